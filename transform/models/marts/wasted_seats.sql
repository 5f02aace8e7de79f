-- The seats behind wasted_seats_by_sku's disabled, inactive and unused-Copilot counts, one row
-- per seat.
select
    tenant_id,
    user_id,
    user_principal_name,
    display_name,
    department,
    sku_id,
    sku_part_number,
    product_name,
    wasted_reason,
    last_activity_date,
    last_sign_in_date,
    days_inactive,
    copilot_last_activity_date,
    copilot_days_inactive,
    held_since
from {{ ref('seat_activity') }}
where wasted_reason is not null
