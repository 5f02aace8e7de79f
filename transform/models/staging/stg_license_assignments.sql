-- One row per (user, SKU) license held or failing, as the license_assignments stream emits it.
select
    tenant_id,
    user_id,
    lower(cast(sku_id as varchar)) as sku_id,
    user_principal_name,
    account_enabled,
    user_type,
    sku_part_number,
    product_display_name,
    assigned_directly,
    state,
    error,
    consumes_unit,
    cast(assigned_date_time as date) as assigned_date,
    cast(last_updated_date_time as date) as last_updated_date
from {{ tap_source('license_assignments') }}
where _sdc_deleted_at is null
