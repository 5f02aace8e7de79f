select
    tenant_id,
    id as group_id,
    display_name
from {{ tap_source('groups') }}
where _sdc_deleted_at is null
