-- Each user's last sign-ins (user_sign_in_activity, Graph's signInActivity, UTC). The stream is
-- off unless selected (it needs AuditLog.Read.All and Entra ID P1/P2): without its table this
-- model is empty and the insight judges activity by the usage reports alone.
-- last_successful_sign_in_date is the activity signal: a failed attempt is not use of a seat
-- (Graph records the last successful sign-in since December 2023).
-- The stream reads every user each run but does not retire rows, so a deleted user's row stays
-- in the table: only current users (stg_users) are kept.
with sign_ins as (
    select
        tenant_id,
        id as user_id,
        user_principal_name,
        cast(last_sign_in_date_time as timestamp) as last_sign_in_date_time,
        last_sign_in_request_id,
        cast(last_non_interactive_sign_in_date_time as timestamp)
            as last_non_interactive_sign_in_date_time,
        last_non_interactive_sign_in_request_id,
        cast(last_successful_sign_in_date_time as timestamp) as last_successful_sign_in_date_time,
        last_successful_sign_in_request_id,
        cast(cast(last_successful_sign_in_date_time as timestamp) as date)
            as last_successful_sign_in_date
    from {{ tap_source('user_sign_in_activity', {
        'tenant_id': 'varchar',
        'id': 'varchar',
        'user_principal_name': 'varchar',
        'last_sign_in_date_time': 'varchar',
        'last_sign_in_request_id': 'varchar',
        'last_non_interactive_sign_in_date_time': 'varchar',
        'last_non_interactive_sign_in_request_id': 'varchar',
        'last_successful_sign_in_date_time': 'varchar',
        'last_successful_sign_in_request_id': 'varchar',
    }) }}
    where _sdc_deleted_at is null
)
-- The tap keys users by (tenant_id, id): match both.
select s.*
from sign_ins as s
where exists (
    select 1 from {{ ref('stg_users') }} as u
    where u.tenant_id = s.tenant_id and u.user_id = s.user_id
)
