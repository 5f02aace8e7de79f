"""A report column Microsoft adds reaches the warehouse (issue 12, item 10): `meltano run
tap-microsoft365 target-postgres` into a real PostgreSQL 15, the emulator serving
getEmailActivityUserDetail files with a column the tap does not know.

The column lands in the report table's `extra_columns` (jsonb), one key per unknown column.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from psycopg import sql

from tests.graph_emulator import GraphEmulator, Tenant
from tests.meltano_project import MeltanoProject, installed_meltano, settings_env
from tests.postgres import PostgresServer, postgres_server

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["installed_meltano", "postgres_server"]  # fixtures this module uses

TODAY = dt.date(2026, 11, 26)
SCHEMA = "report_columns"
FUNCTION, STREAM = "getEmailActivityUserDetail", "email_activity_user_detail"


def copilot_chats(row: Mapping[str, str]) -> str:
    """The added column's value: derived from the row, so a misplaced value shows."""
    return str(len(row["User Principal Name"]) * 3)


def test_an_added_report_column_lands_in_extra_columns_in_postgres(
    installed_meltano: MeltanoProject, postgres_server: PostgresServer
) -> None:
    tenant = Tenant.synthetic(users=30, groups=4, seed=17, today=TODAY)
    with GraphEmulator(tenant, time_scale=0.005) as emulator:
        emulator.reports.extra_columns[FUNCTION] = ["Copilot Chat Count"]
        emulator.reports.extra_column_values[FUNCTION] = {"Copilot Chat Count": copilot_chats}
        refresh = emulator.reports.refresh_date
        env = {
            **settings_env(emulator.config(start_date=refresh.isoformat())),
            "REQUESTS_CA_BUNDLE": emulator.ca_bundle,
            **postgres_server.target_env(),
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": SCHEMA,
            "TAP_MICROSOFT365__SELECT": json.dumps([f"{STREAM}.*"]),
        }
        installed_meltano.run(
            "run", "--full-refresh", "tap-microsoft365", "target-postgres", env=env
        )
    rows = postgres_server.query(
        sql.SQL(
            "select user_principal_name, extra_columns, extra_columns->>'copilot_chat_count' "
            "from {}.{}"
        ).format(sql.Identifier(SCHEMA), sql.Identifier(STREAM))
    )
    assert len(rows) >= 10
    for upn, extra, chats in rows:
        assert extra == {"copilot_chat_count": chats}
        assert chats == str(len(upn) * 3)
    (udt,) = postgres_server.query(
        "select udt_name from information_schema.columns where table_schema = %s and "
        "table_name = %s and column_name = 'extra_columns'",
        SCHEMA,
        STREAM,
    )[0]
    assert udt == "jsonb"
