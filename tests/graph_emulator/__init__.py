"""A faithful local emulator of Entra ID + Microsoft Graph for the tap's tests.

    from tests.graph_emulator import GraphEmulator, Tenant

    tenant = Tenant.synthetic(users=2500, groups=60, seed=7, today=datetime.date(2026, 11, 26))
    with GraphEmulator(tenant, time_scale=1.0) as emu:
        config = emu.config()                 # tenant_id, client_id, client_secret, hosts
        os.environ["REQUESTS_CA_BUNDLE"] = emu.ca_bundle
        ...
        emu.request_log                       # what the tap sent (role, method, path, ...)
        emu.faults.throttle(path="/users")    # inject faults at runtime
        emu.tenant.update_user(uid, department="Sales")   # mutate, then run delta again

    # Several tenants, one multi-tenant app (a token for one tenant reads only that tenant):
    emu = GraphEmulator(contoso, tenants=[fabrikam])
    emu.add_tenant(northwind, consented=False)      # its token requests fail with AADSTS65001
    emu.site(fabrikam.tenant_id).roles = {...}      # permissions granted in that tenant only
    emu.reports_of(fabrikam.tenant_id)              # its reports, with its own throttling budget
    emu.tenants_config()                            # a tap config with a `tenants` list

Parts: tenant.py (the fake tenant and its mutations), login.py (Entra ID endpoints),
directory.py (Graph directory endpoints, delta, $batch), faults.py (fault injection),
server.py (HTTPS listeners, routing, GraphEmulator), reports.py (usage reports, separate).
Run standalone with `python -m tests.graph_emulator --help`.
"""

from .directory import PagingOptions
from .faults import FaultInjector, FaultRule
from .login import AppRegistration, TenantSite
from .server import GraphEmulator, LogRecord
from .tenant import SKU_CATALOG, Tenant

__all__ = [
    "SKU_CATALOG",
    "AppRegistration",
    "FaultInjector",
    "FaultRule",
    "GraphEmulator",
    "LogRecord",
    "PagingOptions",
    "Tenant",
    "TenantSite",
]
