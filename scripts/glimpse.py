"""Print what a run landed in DuckDB: rows per table, then the license insight's marts.

    .venv/bin/python scripts/glimpse.py output/sandbox.duckdb [--schema tap_microsoft365]

The project venv's duckdb is the version target-duckdb and dbt-duckdb use (pyproject.toml's
`demo` group), so it reads the file they wrote. The marts are the dbt project's (transform/,
schema `license_insight`), per tenant (a run may read several: the tap's `tenants` setting):
seats per product, wasted seats and what they cost (with prices in transform/seeds/), Microsoft
365 Copilot seats and their use, inactive users, group license errors and how fresh the reports
are.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import duckdb

SHOWN = 8  # rows of a list printed before "...and N more"


class Warehouse:
    """The tables of one schema in a DuckDB file."""

    def __init__(self, path: str, schema: str) -> None:
        self.connection = duckdb.connect(path, read_only=True)
        self.schema = schema
        self.tenant = ""  # the tenant `$tenant` in a statement stands for
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
        """Run one of this module's statements; `{s}` is the schema, `names` fill the rest,
        `$tenant` is the tenant shown."""
        statement = sql.format(s=f'"{self.schema}"', **names)
        if "$tenant" in statement:
            params = {**(params or {}), "tenant": self.tenant}
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


def cut(rows: list[tuple[Any, ...]], total: int) -> None:
    """Say how many rows a cut list left out."""
    if total > len(rows):
        print(f"  ...and {total - len(rows)} more")


def seats(marts: Warehouse) -> None:
    """Seats bought against seats assigned and used, per product."""
    rows = marts.rows(
        """
        select product_name, capability_status, purchased_units, warning_units,
               suspended_units + locked_out_units, assigned_units, active_seats,
               available_units, over_assigned_units
        from {s}.seats_by_sku where tenant_id = $tenant and applies_to = 'User'
        order by assigned_units desc, product_name
        """
    )
    print("\nSeats per product (seats_by_sku):")
    print_table(
        (
            "product",
            "status",
            "purchased",
            "warning",
            "cancelled",
            "assigned",
            "active",
            "available",
            "over-assigned",
        ),
        rows,
    )
    if any(row[-1] for row in rows):
        print(
            "  over-assigned: licenses still on users while their subscription is suspended or"
            " expired; those users are losing the service (renew, or remove the licenses)"
        )


def wasted(marts: Warehouse) -> None:
    """Wasted seats per paid product, and their cost when prices are given."""
    rows = marts.rows(
        """
        select product_name, purchased_units, unassigned_seats, disabled_account_seats,
               inactive_user_seats, unused_copilot_seats, wasted_seats,
               cast(wasted_percent as varchar) || '%',
               case when wasted_monthly_cost is not null
                    then cast(wasted_monthly_cost as varchar) || ' ' || currency end,
               inactive_days
        from {s}.wasted_seats_by_sku where tenant_id = $tenant
        order by wasted_monthly_cost desc nulls last, wasted_seats desc, product_name
        """
    )
    if not rows:
        print("\nWasted seats: no paid user products")
        return
    days = rows[0][-1]
    total = sum(row[6] for row in rows)
    print(
        f"\nWasted seats (wasted_seats_by_sku): {total}: unassigned, held by disabled accounts,"
        f" or by users inactive in every workload for over {days} days (Copilot: not used for"
        f" over {days} days)"
    )
    print_table(
        (
            "product",
            "purchased",
            "unassigned",
            "disabled",
            "inactive",
            "unused Copilot",
            "wasted",
            "of purchased",
            "per month",
        ),
        [row[:-1] for row in rows],
    )
    money = marts.rows(
        "select currency, sum(wasted_monthly_cost) from {s}.wasted_seats_by_sku"
        " where tenant_id = $tenant and wasted_monthly_cost is not null"
        " group by currency order by currency"
    )
    if money:
        print("  wasted per month: " + ", ".join(f"{cost} {cur}" for cur, cost in money))
        if marts.rows("select count(*) from {s}.sku_prices")[0][0] == 0:
            print(
                "  (priced with transform/seeds/sku_prices_example.csv: MADE-UP prices; put"
                " yours in transform/seeds/sku_prices.csv)"
            )
    else:
        print("  no prices: fill in transform/seeds/sku_prices.csv to see what they cost")


def copilot(marts: Warehouse) -> None:
    """Microsoft 365 Copilot seats: assigned, used within the threshold, wasted."""
    if not marts.has("copilot_seats"):
        return
    (total, in_use, never, unjudged, unused, idle, disabled), *_ = marts.rows(
        """
        select count(*), count(*) filter (where in_use),
               count(*) filter (where copilot_last_activity_date is null
                                and copilot_days_inactive is not null),
               count(*) filter (where copilot_days_inactive is null),
               count(*) filter (where wasted_reason = 'unused Copilot'),
               count(*) filter (where wasted_reason = 'inactive user'),
               count(*) filter (where wasted_reason = 'disabled account')
        from {s}.copilot_seats where tenant_id = $tenant
        """
    )
    (days,), *_ = marts.rows("select max(inactive_days) from {s}.wasted_seats_by_sku")
    print(f"\nMicrosoft 365 Copilot seats (copilot_seats): {total} assigned")
    if not total:
        return
    print(
        f"  {in_use} used Copilot in the last {days} days, {never} never used it,"
        f" {unjudged} not in the Copilot report; wasted: {unused} unused, {idle} held by"
        f" inactive users, {disabled} by disabled accounts"
    )
    rows = marts.rows(
        """
        select display_name, user_principal_name,
               coalesce(cast(copilot_last_activity_date as varchar), 'never'),
               copilot_days_inactive, held_since, coalesce(wasted_reason, '')
        from {s}.copilot_seats where tenant_id = $tenant and not in_use
        order by copilot_days_inactive desc nulls last, user_principal_name limit {shown}
        """,
        shown=str(SHOWN),
    )
    if rows:
        print("  not in use:")
        print_table(
            ("user", "user principal name", "last Copilot use", "days", "held since", "wasted"),
            rows,
        )
        cut(rows, total - in_use)


def inactive(marts: Warehouse) -> None:
    """Users holding seats with no activity in any workload (nor sign-in) for the threshold."""
    (total,), *_ = marts.rows("select count(*) from {s}.inactive_users where tenant_id = $tenant")
    (sign_ins,), *_ = marts.rows(
        "select count(*) from {s}.user_activity where tenant_id = $tenant and sign_ins_known"
    )
    rows = marts.rows(
        """
        select display_name, user_principal_name, department,
               coalesce(cast(last_activity_date as varchar), 'never'),
               coalesce(cast(last_sign_in_date as varchar), {never}), days_inactive, products
        from {s}.inactive_users where tenant_id = $tenant
        order by days_inactive desc, user_principal_name limit {shown}
        """,
        shown=str(SHOWN),
        never="'never'" if sign_ins else "'not loaded'",
    )
    print(f"\nInactive users holding seats (inactive_users): {total}")
    if sign_ins:
        print(
            f"  a successful sign-in counts as activity (user_sign_in_activity: {sign_ins} users)"
        )
    else:
        print(
            "  activity from the usage reports only: user_sign_in_activity is not loaded"
            " (README, License insight: Sign-ins)"
        )
    if rows:
        print_table(
            (
                "user",
                "user principal name",
                "department",
                "last active",
                "last sign-in",
                "days",
                "products",
            ),
            rows,
        )
        cut(rows, total)


def group_errors(marts: Warehouse) -> None:
    """Group-based license assignments that failed."""
    (total,), *_ = marts.rows(
        "select count(*) from {s}.group_license_errors where tenant_id = $tenant"
    )
    rows = marts.rows(
        """
        select group_display_name, product_name, error, user_principal_name
        from {s}.group_license_errors where tenant_id = $tenant
        order by group_display_name, user_principal_name limit {shown}
        """,
        shown=str(SHOWN),
    )
    print(f"\nGroup license errors (group_license_errors): {total}")
    if rows:
        print_table(("group", "product", "error", "user"), rows)
        cut(rows, total)


def freshness(marts: Warehouse) -> None:
    """How old the usage data is."""
    rows = marts.rows(
        "select report, latest_report_date, days_behind, names_concealed"
        " from {s}.report_freshness where tenant_id = $tenant order by report"
    )
    print("\nUsage reports (report_freshness; Microsoft's reports lag 2 to 3 days):")
    print_table(("report", "latest day", "days behind", "names concealed"), rows)


def main(argv: list[str] | None = None) -> int:
    """Print the glimpse of one DuckDB file."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("database")
    parser.add_argument("--schema", default="tap_microsoft365", help="the tap's tables")
    parser.add_argument("--marts", default="license_insight", help="the dbt models")
    args = parser.parse_args(argv)
    warehouse = Warehouse(args.database, args.schema)
    if not warehouse.tables:
        print(f"{args.database}: nothing loaded in schema {args.schema}")
        return 1
    table_counts(warehouse)
    marts = Warehouse(args.database, args.marts)
    if not marts.has("tenants", "seats_by_sku", "wasted_seats_by_sku", "inactive_users"):
        print(
            f"\nNo license insight in schema {args.marts}: run `meltano run dbt-duckdb:run`"
            " (transform/)"
        )
        return 1
    for tenant_id, name in marts.rows(
        "select tenant_id, tenant_name from {s}.tenants order by tenant_name, tenant_id"
    ):
        marts.tenant = tenant_id
        print(f"\nTenant {name}" + (f" ({tenant_id})" if name != tenant_id else "") + ":")
        seats(marts)
        wasted(marts)
        copilot(marts)
        inactive(marts)
        group_errors(marts)
        freshness(marts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
