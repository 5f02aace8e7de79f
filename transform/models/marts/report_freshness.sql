-- How fresh the usage data is, per tenant and report the insight reads, and whether its user names
-- can be joined to users (the tenant may conceal them: Microsoft 365 admin center > Settings > Org
-- settings > Services > Reports). Reports lag Graph by 2 to 3 days: a tenant's latest report day is
-- the "as of" date its inactivity figures count from. Every tenant loaded (the tenants mart) has a
-- row per report; a report the run did not load for it (the Copilot report of a tenant without
-- Copilot) has no latest day.
with tenants as (
    select tenant_id from {{ ref('tenants') }}
),
{#- (name, report, model, its refresh date column, which rows conceal names). The Teams report's
    User Id joins users even when names are concealed; the Copilot usage report is a 7-day
    snapshot, its day is its Report Refresh Date. -#}
{%- set reports = [
    ('office', 'office365_active_user_detail', 'stg_office365_active_user_detail',
        'report_refresh_date', 'not r.is_named'),
    ('teams', 'teams_user_activity_user_detail', 'stg_teams_user_activity',
        'report_date', 'false'),
    ('copilot', 'microsoft365_copilot_usage_user_detail', 'stg_copilot_usage',
        'report_refresh_date', 'not r.is_named'),
] %}
{%- for name, report, model, refresh, concealed in reports %}
{{ name }} as (
    select
        r.tenant_id,
        max(r.report_date) as latest_report_date,
        max(r.{{ refresh }}) as report_refresh_date
    from {{ ref(model) }} as r
    group by r.tenant_id
),
{{ name }}_latest as (
    select
        r.tenant_id,
        count(*) as latest_day_rows,
        count(*) filter (where {{ concealed }}) as concealed_rows
    from {{ ref(model) }} as r
    join {{ name }} on {{ name }}.tenant_id = r.tenant_id
        and r.report_date = {{ name }}.latest_report_date
    group by r.tenant_id
){{ "," if not loop.last }}
{%- endfor %}
{%- for name, report, model, refresh, concealed in reports %}
select
    tenants.tenant_id,
    '{{ report }}' as report,
    {{ name }}.latest_report_date,
    {{ name }}.report_refresh_date,
    coalesce({{ name }}_latest.latest_day_rows, 0) as latest_day_rows,
    coalesce(
        {{ name }}_latest.latest_day_rows > 0
            and {{ name }}_latest.concealed_rows = {{ name }}_latest.latest_day_rows,
        false
    ) as names_concealed,
    {{ days_between(name ~ '.latest_report_date', 'current_date') }} as days_behind
from tenants
left join {{ name }} on {{ name }}.tenant_id = tenants.tenant_id
left join {{ name }}_latest on {{ name }}_latest.tenant_id = tenants.tenant_id
{{ "union all" if not loop.last }}
{%- endfor %}
