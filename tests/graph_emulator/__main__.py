"""Run the Graph emulator as a standalone process.

    python -m tests.graph_emulator --users 300 --groups 20 --seed 7 \
        [--today YYYY-MM-DD] [--time-scale X] [--fault-profile NAME ...] \
        [--tenants N [--no-consent K]] --config-out PATH

Writes a JSON file to PATH: the tap config keys (tenant_id, client_id, client_secret,
authority_host, graph_url), the key "ca_bundle" with the path of the CA certificate to trust
(export it as REQUESTS_CA_BUNDLE for the tap), and an "emulator" object with download_url,
client_certificate_path, client_certificate_password and the tenant parameters. Drop "ca_bundle"
and "emulator" before handing the file to a tap that rejects unknown settings. With --tenants N
the emulator serves N tenants (seeds seed, seed+1, ...; domains tenant1.onmicrosoft.com, ...)
where the one app is consented, except tenant K of --no-consent (AADSTS65001); the config then
has a `tenants` list in place of `tenant_id`. The file is
written atomically and readable by the owner only.

Prints one line "graph-emulator ready ..." when every listener is up, then serves until SIGTERM
or SIGINT.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .server import GraphEmulator
from .tenant import Tenant


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, start the emulator, write the config and wait for a signal."""
    parser = argparse.ArgumentParser(prog="python -m tests.graph_emulator", description=__doc__)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=None)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument(
        "--copilot-seats", type=int, default=0, help="users holding Microsoft 365 Copilot"
    )
    parser.add_argument(
        "--audit-log",
        action="store_true",
        help="grant the app AuditLog.Read.All (user signInActivity)",
    )
    parser.add_argument(
        "--no-entra-premium",
        action="store_true",
        help="a tenant without Entra ID P1/P2 (signInActivity answers 403)",
    )
    parser.add_argument(
        "--fault-profile",
        action="append",
        default=[],
        choices=["throttling", "flaky", "token_expiry", "latency"],
    )
    parser.add_argument("--tenants", type=int, default=1, help="how many tenants to serve")
    parser.add_argument(
        "--no-consent",
        type=int,
        action="append",
        default=[],
        metavar="K",
        help="tenant K (1-based, with --tenants) never consented to the app",
    )
    parser.add_argument("--config-out", type=Path, required=True)
    args = parser.parse_args(argv)

    tenant, *others = Tenant.several(
        args.tenants,
        seed=args.seed,
        users=args.users,
        groups=args.groups,
        today=args.today or dt.date.today(),
        copilot_seats=args.copilot_seats,
        entra_premium=not args.no_entra_premium,
    )
    emulator = GraphEmulator(tenant, time_scale=args.time_scale)
    for number, other in enumerate(others, start=2):
        emulator.add_tenant(other, consented=number not in args.no_consent)
    if 1 in args.no_consent:
        emulator.site(tenant.tenant_id).consented = False
    if args.audit_log:
        emulator.app.roles.add("AuditLog.Read.All")
    emulator.start()
    for profile in args.fault_profile:
        emulator.faults.profile(profile)
    config = emulator.tenants_config() if args.tenants > 1 else emulator.config()
    config["ca_bundle"] = emulator.ca_bundle
    config["emulator"] = {
        "download_url": emulator.download_url,
        "client_certificate_path": emulator.client_certificate_path,
        "client_certificate_password": emulator.client_certificate_password,
        "tenant_domain": emulator.tenant_domain,
        "users": args.users,
        "groups": args.groups,
        "seed": args.seed,
        "today": tenant.today.isoformat(),
    }
    args.config_out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.config_out.with_suffix(args.config_out.suffix + ".tmp")
    tmp.write_text(json.dumps(config, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(args.config_out)  # appears whole: a watcher never reads half a file

    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        del signum, frame
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(
        f"graph-emulator ready graph_url={emulator.graph_url} "
        f"authority_host={emulator.authority_host} config={args.config_out} pid={os.getpid()}",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
