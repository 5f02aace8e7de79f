"""Print what a run landed in DuckDB: rows per table, seats, and licensed users who do nothing.

    python scripts/glimpse.py output/sandbox.duckdb [--schema tap_microsoft365]

Run it with the interpreter of Meltano's target-duckdb plugin (it has the same duckdb library
that wrote the file): `.meltano/loaders/target-duckdb/venv/bin/python`. `make demo` does.

Each part uses only the tables that are there: rows per table always; seats bought and assigned
with `subscribed_skus`; licensed accounts that cannot sign in with `users`; and, once the usage
reports are loaded (`office365_active_user_detail`), licensed users with no activity in any
Microsoft 365 service for 30 days, and the seats they hold.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import duckdb

INACTIVE_DAYS = 30
WORKLOADS = ("exchange", "onedrive", "sharepoint", "skype_for_business", "yammer", "teams")


class Warehouse:
    """The tables of one schema in a DuckDB file."""

    def __init__(self, path: str, schema: str) -> None:
        self.connection = duckdb.connect(path, read_only=True)
        self.schema = schema
        rows = self.connection.execute(
            "select table_name from duckdb_tables() where schema_name = ? order by table_name",
            [schema],
        ).fetchall()
        self.tables = [name for (name,) in rows]

    def has(self, *tables: str) -> bool:
        """Whether every one of `tables` was loaded."""
        return all(table in self.tables for table in tables)

    def columns(self, table: str) -> set[str]:
        """The column names of one table."""
        rows = self.connection.execute(
            "select column_name from duckdb_columns() where schema_name = ? and table_name = ?",
            [self.schema, table],
        ).fetchall()
        return {name for (name,) in rows}

    def rows(
        self, sql: str, params: dict[str, Any] | None = None, **names: str
    ) -> list[tuple[Any, ...]]:
        """Run one of this module's statements; `{s}` is the schema, `names` fill the rest."""
        statement = sql.format(s=f'"{self.schema}"', **names)
        return self.connection.execute(statement, params or {}).fetchall()


def print_table(header: tuple[str, ...], rows: list[tuple[Any, ...]], indent: str = "  ") -> None:
    """A plain aligned text table."""
    cells = [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    for row in [header, tuple("-" * w for w in widths), *cells]:
        print(indent + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


COUNT_ROWS = 'select count(*), {removed} from {s}."{table}"'


def table_counts(warehouse: Warehouse) -> None:
    """Rows per table, with rows the tap reported deleted."""
    rows = []
    for table in warehouse.tables:
        deleted = "_sdc_deleted_at" in warehouse.columns(table)
        total, removed = warehouse.rows(
            COUNT_ROWS, removed="count(_sdc_deleted_at)" if deleted else "0", table=table
        )[0]
        rows.append((table, total, f"{removed} marked deleted" if removed else ""))
    print(f"Rows per table ({len(rows)} tables):")
    print_table(("table", "rows", ""), rows)


def product_name(warehouse: Warehouse) -> str:
    """The product's display name where the tap added it (product names file), else its part
    number."""
    if "product_display_name" in warehouse.columns("subscribed_skus"):
        return "coalesce(product_display_name, sku_part_number)"
    return "sku_part_number"


def seats(warehouse: Warehouse) -> None:
    """Seats bought (enabled prepaid units) against seats assigned, per product."""
    rows = warehouse.rows(
        """
        select {product}, capability_status, active, lapsed, consumed_units,
               active - consumed_units
        from (
            select *,
                   cast(prepaid_units ->> '$.enabled' as bigint) as active,
                   coalesce(cast(prepaid_units ->> '$.warning' as bigint), 0)
                   + coalesce(cast(prepaid_units ->> '$.suspended' as bigint), 0)
                   + coalesce(cast(prepaid_units ->> '$.lockedOut' as bigint), 0) as lapsed
            from {s}.subscribed_skus
            where applies_to = 'User'
        )
        order by consumed_units desc, sku_part_number
        """,
        product=product_name(warehouse),
    )
    print("\nSeats per product (subscribed_skus; lapsed = in warning, suspended or locked out):")
    print_table(("product", "status", "active", "lapsed", "assigned", "unassigned"), rows)


# The statements below are this module's own; `{s}` (the schema), `{last_active}` (an
# expression over the report's date columns) and `{where}` are filled in by `Warehouse.rows`
# with names read from the database's catalog. Values travel as query parameters.
LICENSED = """
with licensed as (
    select u.id, u.display_name, u.user_principal_name, u.department, u.account_enabled,
           from_json(u.assigned_licenses, '[{{"skuId": "VARCHAR"}}]') as licenses
    from {s}.users u
    where u._sdc_deleted_at is null and json_array_length(u.assigned_licenses) > 0
)
select count(*) filter (where not account_enabled), count(*) from licensed
"""
REPORT = "office365_active_user_detail"
AS_OF = "select max(try_cast(report_refresh_date as date)) from {s}.office365_active_user_detail"
# Licensed users joined with their latest row of the active-user report; `{then}` is one of
# the final selects below.
INACTIVE = """
with licensed as (
    select u.id, u.display_name, u.user_principal_name, u.department, u.account_enabled,
           from_json(u.assigned_licenses, '[{{"skuId": "VARCHAR"}}]') as licenses
    from {s}.users u
    where u._sdc_deleted_at is null and json_array_length(u.assigned_licenses) > 0
),
latest as (
    select r.user_principal_name, {last_active} as last_active
    from {s}.office365_active_user_detail r
    where try_cast(r.report_date as date) = (
        select max(try_cast(report_date as date)) from {s}.office365_active_user_detail)
),
joined as (
    select l.*, latest.last_active, latest.user_principal_name is not null as reported
    from licensed l left join latest
      on lower(latest.user_principal_name) = lower(l.user_principal_name)
),
inactive as (
    select * from joined
    where reported and (last_active is null or last_active < $as_of - to_days($days))
)
{then}
"""
COUNTS = (
    "select count(*), count(*) filter (where reported), (select count(*) from inactive) from joined"
)
EXAMPLES = (
    "select display_name, user_principal_name, department, "
    "coalesce(cast(last_active as varchar), 'never') from inactive "
    "order by last_active nulls first, user_principal_name limit 8"
)
SEATS = (
    "select {product}, count(*) from inactive i, unnest(i.licenses) as l(license) "
    'join {s}.subscribed_skus s on s.sku_id = l.license."skuId" group by 1 order by 2 desc, 1'
)


def blocked_but_licensed(warehouse: Warehouse) -> None:
    """Accounts that cannot sign in yet hold paid licenses."""
    (blocked, licensed), *_ = warehouse.rows(LICENSED)
    print(f"\nLicensed users: {licensed}; sign-in blocked among them: {blocked}")


def inactive_licensed_users(warehouse: Warehouse) -> None:
    """Licensed users with no activity in any workload for 30 days, from the active-user report."""
    columns = warehouse.columns(REPORT)
    dates = [f"{w}_last_activity_date" for w in WORKLOADS if f"{w}_last_activity_date" in columns]
    last_active = f"greatest({', '.join(f'try_cast(r.{d} as date)' for d in dates)})"
    (as_of,), *_ = warehouse.rows(AS_OF)
    if as_of is None:
        print(f"\n{REPORT} is empty: no activity to compare with yet")
        return
    params = {"as_of": as_of, "days": INACTIVE_DAYS}
    (licensed, reported, inactive), *_ = warehouse.rows(
        INACTIVE, params, last_active=last_active, then=COUNTS
    )
    print(
        f"\nLicensed users with no activity in {INACTIVE_DAYS} days ({REPORT}, as of {as_of}): "
        f"{inactive} of {licensed}"
    )
    if reported == 0:
        print(
            "  no licensed user matches a report row: the reports conceal user names (Microsoft"
            " 365 admin center > Settings > Org settings > Services > Reports), so the two"
            " cannot be joined"
        )
        return
    examples = warehouse.rows(INACTIVE, params, last_active=last_active, then=EXAMPLES)
    print_table(("user", "user principal name", "department", "last active"), examples)
    if inactive > len(examples):
        print(f"  ...and {inactive - len(examples)} more")
    if warehouse.has("subscribed_skus"):
        seats = SEATS.format(s=f'"{warehouse.schema}"', product=product_name(warehouse))
        held = warehouse.rows(INACTIVE, params, last_active=last_active, then=seats)
        print("  seats they hold: " + ", ".join(f"{sku} {n}" for sku, n in held))


ASSIGNMENT_ERRORS = """
select error, count(*), count(distinct user_id)
from {s}.license_assignments
where _sdc_deleted_at is null and coalesce(error, 'None') <> 'None'
group by error order by 2 desc, error
"""


def assignment_errors(warehouse: Warehouse) -> None:
    """License assignments that failed (group-based licensing runs out of seats, conflicts)."""
    rows = warehouse.rows(ASSIGNMENT_ERRORS)
    total = sum(n for _, n, _ in rows)
    print(f"\nLicense assignments in error (license_assignments): {total}")
    if rows:
        print_table(("error", "assignments", "users"), rows)


def main(argv: list[str] | None = None) -> int:
    """Print the glimpse of one DuckDB file."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("database")
    parser.add_argument("--schema", default="tap_microsoft365")
    args = parser.parse_args(argv)
    warehouse = Warehouse(args.database, args.schema)
    if not warehouse.tables:
        print(f"{args.database}: nothing loaded in schema {args.schema}")
        return 1
    table_counts(warehouse)
    if warehouse.has("subscribed_skus"):
        seats(warehouse)
    if warehouse.has("users"):
        blocked_but_licensed(warehouse)
    if warehouse.has("license_assignments"):
        assignment_errors(warehouse)
    if warehouse.has("users", "office365_active_user_detail"):
        inactive_licensed_users(warehouse)
    elif warehouse.has("users"):
        print(
            "\nNo usage reports loaded (office365_active_user_detail): select them to see which"
            " licensed users have not used Microsoft 365 for 30 days"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
