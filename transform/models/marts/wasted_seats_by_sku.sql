-- Per tenant and paid, user-assignable SKU: seats nobody uses, each counted once. Unassigned units,
-- seats held by disabled accounts, and seats of enabled users inactive in every workload for more
-- than var('inactive_days') days (past var('grace_days') since the license was assigned; a recent
-- successful sign-in counts as activity when user_sign_in_activity is loaded), and, for Microsoft
-- 365 Copilot, seats of otherwise active users who did not use Copilot for that long
-- (unused_copilot_seats; 0 for other SKUs). With a price for the SKU (seeds/sku_prices.csv) also
-- what they cost per month; null without one.
with held as (
    select
        tenant_id,
        sku_id,
        count(*) filter (where wasted_reason = 'disabled account') as disabled_account_seats,
        count(*) filter (where wasted_reason = 'inactive user') as inactive_user_seats,
        count(*) filter (where wasted_reason = 'unused Copilot') as unused_copilot_seats
    from {{ ref('seat_activity') }}
    group by tenant_id, sku_id
),
counted as (
    select
        k.tenant_id,
        k.sku_id,
        k.sku_part_number,
        k.product_name,
        k.purchased_units,
        k.assigned_units,
        k.active_seats,
        k.available_units as unassigned_seats,
        coalesce(held.disabled_account_seats, 0) as disabled_account_seats,
        coalesce(held.inactive_user_seats, 0) as inactive_user_seats,
        coalesce(held.unused_copilot_seats, 0) as unused_copilot_seats,
        k.available_units
            + coalesce(held.disabled_account_seats, 0)
            + coalesce(held.inactive_user_seats, 0)
            + coalesce(held.unused_copilot_seats, 0) as wasted_seats
    from {{ ref('seats_by_sku') }} as k
    left join held on held.tenant_id = k.tenant_id and held.sku_id = k.sku_id
    where k.applies_to = 'User' and not k.is_free
)
select
    counted.*,
    round(
        cast(100.0 * wasted_seats / nullif(purchased_units, 0) as numeric(8, 2)), 1
    ) as wasted_percent,
    p.monthly_price,
    p.currency,
    cast(wasted_seats * p.monthly_price as numeric(14, 2)) as wasted_monthly_cost,
    {{ var('inactive_days') }} as inactive_days
from counted
left join {{ ref('seat_prices') }} as p on p.sku_part_number = counted.sku_part_number
