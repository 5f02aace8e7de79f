-- Group-based assignments that failed (CountViolation: the group assigns more seats than are
-- free; MutuallyExclusiveViolation, DependencyViolation, ...): one row per (user, SKU, group).
-- The user may still hold the SKU another way (user_holds_license).
select
    p.tenant_id,
    p.user_id,
    la.user_principal_name,
    la.account_enabled,
    p.sku_id,
    coalesce(la.sku_part_number, k.sku_part_number) as sku_part_number,
    coalesce(la.product_display_name, k.product_name, la.sku_part_number) as product_name,
    p.group_id,
    g.display_name as group_display_name,
    p.state,
    p.error,
    p.last_updated_date_time,
    la.consumes_unit as user_holds_license
from {{ ref('stg_license_assignment_paths') }} as p
join {{ ref('stg_license_assignments') }} as la
    on la.tenant_id = p.tenant_id and la.user_id = p.user_id and la.sku_id = p.sku_id
left join {{ ref('stg_groups') }} as g on g.tenant_id = p.tenant_id and g.group_id = p.group_id
left join {{ ref('stg_subscribed_skus') }} as k on k.tenant_id = p.tenant_id and k.sku_id = p.sku_id
where p.group_id is not null and coalesce(p.error, 'None') not in ('None', '')
