-- The Teams team-activity report (teams_team_activity_detail), one row per team and report day:
-- active users and channels, guests, messages, reactions, meetings. Empty when the table is
-- missing (the stream deselected, or a tenant without teams).
select
    cast(report_date as date) as report_date,
    cast(report_refresh_date as date) as report_refresh_date,
    team_id,
    team_name,
    team_type,
    cast(last_activity_date as date) as last_activity_date,
    cast(active_users as integer) as active_users,
    cast(active_channels as integer) as active_channels,
    cast(guests as integer) as guests,
    cast(reactions as integer) as reactions,
    cast(meetings_organized as integer) as meetings_organized,
    cast(post_messages as integer) as post_messages,
    cast(reply_messages as integer) as reply_messages,
    cast(channel_messages as integer) as channel_messages,
    cast(urgent_messages as integer) as urgent_messages,
    cast(mentions as integer) as mentions,
    cast(active_shared_channels as integer) as active_shared_channels,
    cast(active_external_users as integer) as active_external_users
from {{ optional_source('teams_team_activity_detail', {
    'report_date': 'varchar',
    'report_refresh_date': 'varchar',
    'team_id': 'varchar',
    'team_name': 'varchar',
    'team_type': 'varchar',
    'last_activity_date': 'varchar',
    'active_users': 'integer',
    'active_channels': 'integer',
    'guests': 'integer',
    'reactions': 'integer',
    'meetings_organized': 'integer',
    'post_messages': 'integer',
    'reply_messages': 'integer',
    'channel_messages': 'integer',
    'urgent_messages': 'integer',
    'mentions': 'integer',
    'active_shared_channels': 'integer',
    'active_external_users': 'integer',
}) }}
where _sdc_deleted_at is null and coalesce(team_id, '') <> ''
