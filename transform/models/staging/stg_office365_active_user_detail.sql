-- The Microsoft 365 active-user report, one row per user and report day: the last activity day
-- and the license assign day per workload.
select
    tenant_id,
    cast(report_date as date) as report_date,
    cast(report_refresh_date as date) as report_refresh_date,
    user_principal_name,
    lower(user_principal_name) as user_principal_name_lower,
    user_principal_name like '%@%' as is_named,
    cast(exchange_last_activity_date as date) as exchange_last_activity_date,
    cast(onedrive_last_activity_date as date) as onedrive_last_activity_date,
    cast(sharepoint_last_activity_date as date) as sharepoint_last_activity_date,
    cast(skype_for_business_last_activity_date as date) as skype_for_business_last_activity_date,
    cast(yammer_last_activity_date as date) as yammer_last_activity_date,
    cast(teams_last_activity_date as date) as teams_last_activity_date,
    greatest(
        cast(exchange_license_assign_date as date),
        cast(onedrive_license_assign_date as date),
        cast(sharepoint_license_assign_date as date),
        cast(skype_for_business_license_assign_date as date),
        cast(yammer_license_assign_date as date),
        cast(teams_license_assign_date as date)
    ) as latest_license_assign_date
from {{ tap_source('office365_active_user_detail') }}
where _sdc_deleted_at is null
