-- Per seat (a user holding a SKU that consumes a unit): how long its user has been inactive and
-- whether the seat is wasted.
--   held_since: the SKU's assignment date from Graph (license_assignments.assigned_date_time),
--     or, when Graph gives none, the latest License Assign Date in the active-user report, or
--     the day the assignment last changed;
--   days_inactive: from the last activity in any workload (or from held_since for a user never
--     active) to the latest report day; null when the user is not in the reports (not judged);
--   in_grace_period: held for fewer than var('grace_days') days: too new to call wasted.
with seats as (
    select
        la.user_id,
        la.user_principal_name,
        la.account_enabled,
        la.user_type,
        la.sku_id,
        coalesce(la.sku_part_number, k.sku_part_number) as sku_part_number,
        coalesce(la.product_display_name, k.product_name, la.sku_part_number) as product_name,
        la.assigned_directly,
        la.state,
        la.error,
        a.display_name,
        a.department,
        a.last_activity_date,
        a.activity_basis,
        a.activity_as_of,
        coalesce(k.is_free, false) as is_free,
        coalesce(la.assigned_date, a.latest_license_assign_date, la.last_updated_date)
            as held_since
    from {{ ref('stg_license_assignments') }} as la
    left join {{ ref('user_activity') }} as a on a.user_id = la.user_id
    left join {{ ref('stg_subscribed_skus') }} as k on k.sku_id = la.sku_id
    where la.consumes_unit
),
judged as (
    select
        seats.*,
        case when activity_basis <> 'not in reports' then
            greatest(
                0,
                {{ days_between('coalesce(last_activity_date, held_since)', 'activity_as_of') }}
            )
        end as days_inactive,
        coalesce(
            {{ days_between('held_since', 'activity_as_of') }} < {{ var('grace_days') }}, false
        ) as in_grace_period
    from seats
)
select
    judged.*,
    -- Seats of free products cost nothing: never wasted.
    case
        when is_free then null
        when account_enabled is false then 'disabled account'
        when days_inactive > {{ var('inactive_days') }} and not in_grace_period
            then 'inactive user'
    end as wasted_reason
from judged
