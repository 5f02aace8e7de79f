-- Enabled users holding at least one seat, inactive in every workload and (when sign-ins are
-- loaded) without a successful sign-in for more than var('inactive_days') days (seats in their
-- grace period left out), with what they hold.
select
    tenant_id,
    user_id,
    user_principal_name,
    display_name,
    department,
    last_activity_date,
    last_sign_in_date,
    max(days_inactive) as days_inactive,
    count(*) as seats,
    string_agg(coalesce(product_name, sku_id), ', ' order by coalesce(product_name, sku_id))
        as products
from {{ ref('seat_activity') }}
where wasted_reason = 'inactive user'
group by
    tenant_id, user_id, user_principal_name, display_name, department, last_activity_date,
    last_sign_in_date
