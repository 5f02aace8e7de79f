-- Per current user: the last activity per workload from their latest row of the active-user
-- report (Teams also from the Teams report, which still joins when names are concealed), the
-- overall last activity across every workload, and the day counting starts from.
with as_of as (
    select coalesce(
        (select latest_report_date from {{ ref('report_freshness') }}
         where report = 'office365_active_user_detail'),
        (select latest_report_date from {{ ref('report_freshness') }}
         where report = 'teams_user_activity_user_detail')
    ) as activity_as_of
),
office as (
    select *
    from (
        select
            r.*,
            row_number() over (
                partition by r.user_principal_name_lower order by r.report_date desc
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
            row_number() over (partition by t.user_id order by t.report_date desc) as newest
        from {{ ref('stg_teams_user_activity') }} as t
    ) as ranked
    where newest = 1
)
select
    u.user_id,
    u.user_principal_name,
    u.display_name,
    u.department,
    u.account_enabled,
    u.user_type,
    o.exchange_last_activity_date,
    o.onedrive_last_activity_date,
    o.sharepoint_last_activity_date,
    o.skype_for_business_last_activity_date,
    o.yammer_last_activity_date,
    greatest(o.teams_last_activity_date, t.last_activity_date) as teams_last_activity_date,
    greatest(
        o.exchange_last_activity_date,
        o.onedrive_last_activity_date,
        o.sharepoint_last_activity_date,
        o.skype_for_business_last_activity_date,
        o.yammer_last_activity_date,
        o.teams_last_activity_date,
        t.last_activity_date
    ) as last_activity_date,
    o.latest_license_assign_date,
    case
        when o.user_principal_name_lower is not null then 'all workloads'
        when t.user_id is not null then 'Teams only'
        else 'not in reports'
    end as activity_basis,
    as_of.activity_as_of
from {{ ref('stg_users') }} as u
left join office as o on o.user_principal_name_lower = u.user_principal_name_lower
left join teams as t on t.user_id = lower(u.user_id)
cross join as_of
