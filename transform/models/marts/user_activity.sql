-- Per current user of each tenant: the last activity per workload from their latest row of the
-- active-user report (Teams also from the Teams report, which still joins when names are concealed;
-- Copilot from the latest snapshot of the Copilot usage report), their last successful sign-in
-- (when user_sign_in_activity was loaded), the last activity of any kind, and the day counting
-- starts from.
--   last_report_activity_date: the latest activity day in any usage report;
--   last_sign_in_date: the day of the last successful sign-in, interactive or not (UTC);
--   last_activity_date: the later of the two: a recent sign-in makes the user active even
--     without report activity; a user with neither in var('inactive_days') days is inactive;
--   activity_basis: what the user was judged on: 'all workloads' (the active-user report),
--     'Teams only' (names concealed: the Teams report alone joins), 'sign-ins only' (in no
--     report, but sign-ins were loaded), 'not in reports' (nothing known: not judged);
--   sign_ins_known: whether user_sign_in_activity had a row for the user.
-- Each tenant's reports have their own latest day: the "as of" date is per tenant.
with as_of as (
    select
        tenant_id,
        coalesce(
            max(latest_report_date) filter (where report = 'office365_active_user_detail'),
            max(latest_report_date) filter (where report = 'teams_user_activity_user_detail'),
            max(latest_report_date)
                filter (where report = 'microsoft365_copilot_usage_user_detail')
        ) as activity_as_of
    from {{ ref('report_freshness') }}
    group by tenant_id
),
office as (
    select *
    from (
        select
            r.*,
            row_number() over (
                partition by r.tenant_id, r.user_principal_name_lower order by r.report_date desc
            ) as newest
        from {{ ref('stg_office365_active_user_detail') }} as r
        where r.is_named  -- concealed (hashed) names cannot join users
    ) as ranked
    where newest = 1
),
teams as (
    select *
    from (
        select
            t.*,
            row_number() over (
                partition by t.tenant_id, t.user_id order by t.report_date desc
            ) as newest
        from {{ ref('stg_teams_user_activity') }} as t
    ) as ranked
    where newest = 1
),
-- Each tenant's latest snapshot of the Copilot report: it lists the current Copilot holders.
copilot_latest as (
    select tenant_id, max(report_date) as report_date
    from {{ ref('stg_copilot_usage') }}
    group by tenant_id
),
copilot as (
    select c.*
    from {{ ref('stg_copilot_usage') }} as c
    join copilot_latest as l on l.tenant_id = c.tenant_id and l.report_date = c.report_date
    where c.is_named
),
reported as (
    select
        u.*,
        o.exchange_last_activity_date,
        o.onedrive_last_activity_date,
        o.sharepoint_last_activity_date,
        o.skype_for_business_last_activity_date,
        o.yammer_last_activity_date,
        greatest(o.teams_last_activity_date, t.last_activity_date) as teams_last_activity_date,
        c.last_activity_date as copilot_last_activity_date,
        c.report_date as copilot_report_date,
        greatest(
            o.exchange_last_activity_date,
            o.onedrive_last_activity_date,
            o.sharepoint_last_activity_date,
            o.skype_for_business_last_activity_date,
            o.yammer_last_activity_date,
            o.teams_last_activity_date,
            t.last_activity_date,
            c.last_activity_date
        ) as last_report_activity_date,
        s.last_successful_sign_in_date as last_sign_in_date,
        s.user_id is not null as sign_ins_known,
        o.latest_license_assign_date,
        case
            when o.user_principal_name_lower is not null then 'all workloads'
            when t.user_id is not null then 'Teams only'
            when s.user_id is not null then 'sign-ins only'
            else 'not in reports'
        end as activity_basis
    from {{ ref('stg_users') }} as u
    left join office as o on o.tenant_id = u.tenant_id
        and o.user_principal_name_lower = u.user_principal_name_lower
    left join teams as t on t.tenant_id = u.tenant_id and t.user_id = lower(u.user_id)
    left join copilot as c on c.tenant_id = u.tenant_id
        and c.user_principal_name_lower = u.user_principal_name_lower
    left join {{ ref('stg_user_sign_in_activity') }} as s
        on s.tenant_id = u.tenant_id and s.user_id = u.user_id
)
select
    reported.tenant_id,
    user_id,
    user_principal_name,
    display_name,
    department,
    account_enabled,
    user_type,
    exchange_last_activity_date,
    onedrive_last_activity_date,
    sharepoint_last_activity_date,
    skype_for_business_last_activity_date,
    yammer_last_activity_date,
    teams_last_activity_date,
    copilot_last_activity_date,
    copilot_report_date,
    last_report_activity_date,
    last_sign_in_date,
    greatest(last_report_activity_date, last_sign_in_date) as last_activity_date,
    latest_license_assign_date,
    activity_basis,
    sign_ins_known,
    as_of.activity_as_of
from reported
left join as_of on as_of.tenant_id = reported.tenant_id
