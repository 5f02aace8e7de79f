-- Per tenant and SKU: units bought by state, assigned, available, and how many of the assigned
-- seats are in use: held by enabled users active within var('inactive_days') (a Copilot seat: by users
-- who used Copilot within those days; seat_activity.in_use).
--   purchased_units: active units (Graph's prepaidUnits.enabled);
--   warning_units: units past their end date, still usable during the grace period;
--   suspended_units / locked_out_units: cancelled units, no longer usable;
--   assigned_units: units consumed (Graph's consumedUnits);
--   available_units: purchased + warning - assigned, never below 0;
--   over_assigned_units: assigned beyond purchased + warning. Graph keeps a license on a user
--     when its subscription is suspended or expired, so a suspended SKU shows assigned seats
--     with no active unit to back them: those users are losing the service (renew or remove
--     the licenses); they are not counted as available.
with seats as (
    select
        tenant_id,
        sku_id,
        count(*) filter (where in_use) as active_seats
    from {{ ref('seat_activity') }}
    group by tenant_id, sku_id
)
select
    k.tenant_id,
    k.sku_id,
    k.sku_part_number,
    k.product_name,
    k.capability_status,
    k.applies_to,
    k.is_free,
    k.enabled_units as purchased_units,
    k.warning_units,
    k.suspended_units,
    k.locked_out_units,
    k.consumed_units as assigned_units,
    greatest(k.enabled_units + k.warning_units - k.consumed_units, 0) as available_units,
    greatest(k.consumed_units - k.enabled_units - k.warning_units, 0) as over_assigned_units,
    coalesce(seats.active_seats, 0) as active_seats
from {{ ref('stg_subscribed_skus') }} as k
left join seats on seats.tenant_id = k.tenant_id and seats.sku_id = k.sku_id
