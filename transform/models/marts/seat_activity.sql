-- Per seat (a user of a tenant holding a SKU that consumes a unit): how long its user has been
-- inactive and whether the seat is wasted.
--   held_since: the SKU's assignment date from Graph (license_assignments.assigned_date_time),
--     or, when Graph gives none, the latest License Assign Date in the active-user report, or
--     the day the assignment last changed;
--   days_inactive: from the last activity of any kind, report activity or successful sign-in
--     (user_activity), or from held_since for a user never active, to the latest report day;
--     null when neither the reports nor the sign-ins know the user (not judged);
--   is_copilot: a Microsoft 365 Copilot seat (var('copilot_sku_ids'));
--   copilot_days_inactive: for a Copilot seat, the same count from the last Copilot activity in
--     the Copilot usage report (or from held_since for a user who never used it); null when the
--     report has no row for the user (names concealed, or not in the report yet);
--   in_grace_period: held for fewer than var('grace_days') days: too new to call wasted;
--   in_use: the account is enabled and its user was active within var('inactive_days') days
--     (a Copilot seat: used Copilot within those days); a user never active is not in use.
with seats as (
    select
        la.tenant_id,
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
        a.last_report_activity_date,
        a.last_sign_in_date,
        a.copilot_last_activity_date,
        a.copilot_report_date,
        a.activity_basis,
        a.sign_ins_known,
        a.activity_as_of,
        coalesce(k.is_free, false) as is_free,
        la.sku_id in {{ copilot_skus() }} as is_copilot,
        coalesce(la.assigned_date, a.latest_license_assign_date, la.last_updated_date)
            as held_since
    from {{ ref('stg_license_assignments') }} as la
    left join {{ ref('user_activity') }} as a
        on a.tenant_id = la.tenant_id and a.user_id = la.user_id
    left join {{ ref('stg_subscribed_skus') }} as k
        on k.tenant_id = la.tenant_id and k.sku_id = la.sku_id
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
        case when is_copilot and copilot_report_date is not null then
            greatest(
                0,
                {{ days_between(
                    'coalesce(copilot_last_activity_date, held_since)', 'activity_as_of'
                ) }}
            )
        end as copilot_days_inactive,
        coalesce(
            {{ days_between('held_since', 'activity_as_of') }} < {{ var('grace_days') }}, false
        ) as in_grace_period
    from seats
)
select
    judged.*,
    coalesce(
        account_enabled and case
            when is_copilot then copilot_last_activity_date is not null
                and copilot_days_inactive <= {{ var('inactive_days') }}
            else last_activity_date is not null and days_inactive <= {{ var('inactive_days') }}
        end,
        false
    ) as in_use,
    -- Seats of free products cost nothing: never wasted. A user inactive everywhere wastes
    -- every seat; an active user may still leave a Copilot seat unused.
    case
        when is_free then null
        when account_enabled is false then 'disabled account'
        when days_inactive > {{ var('inactive_days') }} and not in_grace_period
            then 'inactive user'
        when copilot_days_inactive > {{ var('inactive_days') }} and not in_grace_period
            then 'unused Copilot'
    end as wasted_reason
from judged
