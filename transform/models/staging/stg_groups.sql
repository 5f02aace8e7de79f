select
    tenant_id,
    id as group_id,
    display_name
from {{ source('tap_microsoft365', 'groups') }}
where _sdc_deleted_at is null
