-- Per tenant, report day and workload: users active that day (their last activity date is the
-- day).
{% set workloads = ['exchange', 'onedrive', 'sharepoint', 'skype_for_business', 'yammer', 'teams'] %}
{% for workload in workloads %}
select
    tenant_id,
    report_date,
    '{{ workload }}' as workload,
    count(*) filter (where {{ workload }}_last_activity_date = report_date) as active_users
from {{ ref('stg_office365_active_user_detail') }}
group by tenant_id, report_date
{{ "union all" if not loop.last }}
{% endfor %}
