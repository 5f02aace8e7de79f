-- Current users (rows the tap reported deleted are left out).
select
    tenant_id,
    id as user_id,
    user_principal_name,
    lower(user_principal_name) as user_principal_name_lower,
    display_name,
    department,
    coalesce(account_enabled, false) as account_enabled,
    user_type
from {{ tap_source('users') }}
where _sdc_deleted_at is null
