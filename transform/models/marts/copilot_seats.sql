-- One row per Microsoft 365 Copilot seat (var('copilot_sku_ids')): who holds it, when they last
-- used Copilot and in which app (the latest snapshot of the Copilot usage report), how long
-- ago, and whether the seat is wasted (seat_activity's rules: disabled account, inactive user,
-- unused Copilot). copilot_days_inactive is null when the report has no row for the user: names
-- concealed in reports, or a license newer than the report.
select
    s.tenant_id,
    s.user_id,
    s.user_principal_name,
    s.display_name,
    s.department,
    s.account_enabled,
    s.sku_id,
    s.sku_part_number,
    s.product_name,
    s.held_since,
    s.in_grace_period,
    s.copilot_last_activity_date,
    c.copilot_chat_last_activity_date,
    c.microsoft_teams_copilot_last_activity_date,
    c.word_copilot_last_activity_date,
    c.excel_copilot_last_activity_date,
    c.powerpoint_copilot_last_activity_date,
    c.outlook_copilot_last_activity_date,
    c.onenote_copilot_last_activity_date,
    c.loop_copilot_last_activity_date,
    s.copilot_days_inactive,
    s.last_activity_date,
    s.days_inactive,
    s.in_use,
    s.wasted_reason,
    s.activity_as_of
from {{ ref('seat_activity') }} as s
left join {{ ref('stg_copilot_usage') }} as c
    on c.tenant_id = s.tenant_id
    and c.user_principal_name_lower = lower(s.user_principal_name)
    and c.report_date = s.copilot_report_date
where s.is_copilot
