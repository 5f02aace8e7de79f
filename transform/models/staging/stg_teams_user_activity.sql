-- The Teams user-activity report: its User Id joins users even when names are concealed.
select
    tenant_id,
    cast(report_date as date) as report_date,
    lower(user_id) as user_id,
    cast(last_activity_date as date) as last_activity_date
from {{ tap_source('teams_user_activity_user_detail') }}
where _sdc_deleted_at is null and coalesce(user_id, '') <> ''
