-- The Microsoft 365 Copilot usage report (microsoft365_copilot_usage_user_detail): a 7-day
-- snapshot with one row per Copilot-licensed user, kept per Report Refresh Date. The last
-- Copilot activity overall and per app (empty: never used). Joins users by user principal name,
-- so not while the tenant conceals names in reports. Empty when the table is missing.
select
    tenant_id,
    cast(report_date as date) as report_date,
    cast(report_refresh_date as date) as report_refresh_date,
    user_principal_name,
    lower(user_principal_name) as user_principal_name_lower,
    user_principal_name like '%@%' as is_named,
    display_name,
    cast(last_activity_date as date) as last_activity_date,
    cast(copilot_chat_last_activity_date as date) as copilot_chat_last_activity_date,
    cast(microsoft_teams_copilot_last_activity_date as date)
        as microsoft_teams_copilot_last_activity_date,
    cast(word_copilot_last_activity_date as date) as word_copilot_last_activity_date,
    cast(excel_copilot_last_activity_date as date) as excel_copilot_last_activity_date,
    cast(powerpoint_copilot_last_activity_date as date) as powerpoint_copilot_last_activity_date,
    cast(outlook_copilot_last_activity_date as date) as outlook_copilot_last_activity_date,
    cast(onenote_copilot_last_activity_date as date) as onenote_copilot_last_activity_date,
    cast(loop_copilot_last_activity_date as date) as loop_copilot_last_activity_date
from {{ tap_source('microsoft365_copilot_usage_user_detail', {
    'tenant_id': 'varchar',
    'report_date': 'varchar',
    'report_refresh_date': 'varchar',
    'user_principal_name': 'varchar',
    'display_name': 'varchar',
    'last_activity_date': 'varchar',
    'copilot_chat_last_activity_date': 'varchar',
    'microsoft_teams_copilot_last_activity_date': 'varchar',
    'word_copilot_last_activity_date': 'varchar',
    'excel_copilot_last_activity_date': 'varchar',
    'powerpoint_copilot_last_activity_date': 'varchar',
    'outlook_copilot_last_activity_date': 'varchar',
    'onenote_copilot_last_activity_date': 'varchar',
    'loop_copilot_last_activity_date': 'varchar',
}) }}
where _sdc_deleted_at is null and coalesce(user_principal_name, '') <> ''
