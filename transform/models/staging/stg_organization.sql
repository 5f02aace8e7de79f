-- The tenant's own record (organization, one per tenant): its name. Empty when the stream was not
-- selected; the insight then names a tenant by its id.
select
    tenant_id,
    display_name
from {{ tap_source('organization', {
    'tenant_id': 'varchar',
    'display_name': 'varchar',
}) }}
where _sdc_deleted_at is null
