-- How fresh the usage data is, per report the insight reads, and whether its user names can be
-- joined to users (the tenant may conceal them: Microsoft 365 admin center > Settings > Org
-- settings > Services > Reports). Reports lag Graph by 2 to 3 days: the latest report day is the
-- "as of" date every inactivity figure counts from.
with office as (
    select
        'office365_active_user_detail' as report,
        max(report_date) as latest_report_date,
        max(report_refresh_date) as report_refresh_date
    from {{ ref('stg_office365_active_user_detail') }}
),
office_latest as (
    select
        count(*) as latest_day_rows,
        count(*) filter (where not is_named) as concealed_rows
    from {{ ref('stg_office365_active_user_detail') }}
    where report_date = (select latest_report_date from office)
),
teams as (
    select
        'teams_user_activity_user_detail' as report,
        max(report_date) as latest_report_date,
        max(report_date) as report_refresh_date
    from {{ ref('stg_teams_user_activity') }}
),
teams_latest as (
    select count(*) as latest_day_rows, 0 as concealed_rows
    from {{ ref('stg_teams_user_activity') }}
    where report_date = (select latest_report_date from teams)
)
select
    office.report,
    office.latest_report_date,
    office.report_refresh_date,
    office_latest.latest_day_rows,
    office_latest.latest_day_rows > 0
        and office_latest.concealed_rows = office_latest.latest_day_rows as names_concealed,
    {{ days_between('office.latest_report_date', 'current_date') }} as days_behind
from office cross join office_latest
union all
select
    teams.report,
    teams.latest_report_date,
    teams.report_refresh_date,
    teams_latest.latest_day_rows,
    false as names_concealed,
    {{ days_between('teams.latest_report_date', 'current_date') }} as days_behind
from teams cross join teams_latest
