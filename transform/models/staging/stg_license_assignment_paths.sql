-- One row per way a user gets a SKU: directly (group_id null) or from a group, with its state
-- and error (Graph's licenseAssignmentStates, kept in license_assignments.assignments).
select
    la.tenant_id,
    la.user_id,
    lower(cast(la.sku_id as varchar)) as sku_id,
    {{ json_text('path', 'assignedByGroup') }} as group_id,
    {{ json_text('path', 'state') }} as state,
    {{ json_text('path', 'error') }} as error,
    cast({{ json_text('path', 'lastUpdatedDateTime') }} as timestamp) as last_updated_date_time
from {{ from_unnested(tap_source('license_assignments', aliased=false), 'la', 'assignments', 'path') }}
where la._sdc_deleted_at is null
