-- One row per tenant loaded (one run may read several: the tap's `tenants` setting). tenant_id is
-- the tenant's GUID, as in every model; tenant_name is what to call it: its display name from
-- the organization stream when that was loaded, else its id.
with loaded as (
    select tenant_id from {{ ref('stg_users') }}
    union
    select tenant_id from {{ ref('stg_subscribed_skus') }}
)
select
    loaded.tenant_id,
    coalesce(max(o.display_name), loaded.tenant_id) as tenant_name
from loaded
left join {{ ref('stg_organization') }} as o on o.tenant_id = loaded.tenant_id
group by loaded.tenant_id
