-- One row per product the tenant bought: units by state (Graph's prepaidUnits), units assigned.
select
    tenant_id,
    lower(cast(sku_id as varchar)) as sku_id,
    sku_part_number,
    coalesce(product_display_name, sku_part_number) as product_name,
    capability_status,
    applies_to,
    coalesce(cast({{ json_text('prepaid_units', 'enabled') }} as integer), 0) as enabled_units,
    coalesce(cast({{ json_text('prepaid_units', 'warning') }} as integer), 0) as warning_units,
    coalesce(cast({{ json_text('prepaid_units', 'suspended') }} as integer), 0) as suspended_units,
    coalesce(cast({{ json_text('prepaid_units', 'lockedOut') }} as integer), 0) as locked_out_units,
    coalesce(cast(consumed_units as integer), 0) as consumed_units,
    sku_part_number in {{ free_skus() }} as is_free
from {{ tap_source('subscribed_skus') }}
where _sdc_deleted_at is null
