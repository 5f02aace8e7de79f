"""Print what a run landed in DuckDB: rows per table, then the license insight's marts.

    .venv/bin/python scripts/glimpse.py output/sandbox.duckdb [--schema tap_microsoft365]

The project venv's duckdb is the version target-duckdb and dbt-duckdb use (pyproject.toml's
`demo` group), so it reads the file they wrote. The marts are the dbt project's (transform/,
schema `license_insight`): seats per product, wasted seats and what they cost (with prices in
transform/seeds/), inactive users, group license errors and how fresh the reports are.
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
        from {s}.seats_by_sku where applies_to = 'User'
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
               inactive_user_seats, wasted_seats, cast(wasted_percent as varchar) || '%',
               case when wasted_monthly_cost is not null
                    then cast(wasted_monthly_cost as varchar) || ' ' || currency end,
               inactive_days
        from {s}.wasted_seats_by_sku
        order by wasted_monthly_cost desc nulls last, wasted_seats desc, product_name
        """
    )
    if not rows:
        print("\nWasted seats: no paid user products")
        return
    days = rows[0][-1]
    total = sum(row[5] for row in rows)
    print(
        f"\nWasted seats (wasted_seats_by_sku): {total}: unassigned, held by disabled accounts,"
        f" or by users inactive in every workload for over {days} days"
    )
    print_table(
        (
            "product",
            "purchased",
            "unassigned",
            "disabled",
            "inactive",
            "wasted",
            "of purchased",
            "per month",
        ),
        [row[:-1] for row in rows],
    )
    money = marts.rows(
        "select currency, sum(wasted_monthly_cost) from {s}.wasted_seats_by_sku"
        " where wasted_monthly_cost is not null group by currency order by currency"
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


def inactive(marts: Warehouse) -> None:
    """Users holding seats with no activity in any workload for the threshold's days."""
    (total,), *_ = marts.rows("select count(*) from {s}.inactive_users")
    rows = marts.rows(
        """
        select display_name, user_principal_name, department,
               coalesce(cast(last_activity_date as varchar), 'never'), days_inactive, products
        from {s}.inactive_users
        order by days_inactive desc, user_principal_name limit {shown}
        """,
        shown=str(SHOWN),
    )
    print(f"\nInactive users holding seats (inactive_users): {total}")
    if rows:
        print_table(
            ("user", "user principal name", "department", "last active", "days", "products"),
            rows,
        )
        cut(rows, total)


def group_errors(marts: Warehouse) -> None:
    """Group-based license assignments that failed."""
    (total,), *_ = marts.rows("select count(*) from {s}.group_license_errors")
    rows = marts.rows(
        """
        select group_display_name, product_name, error, user_principal_name
        from {s}.group_license_errors
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
        " from {s}.report_freshness order by report"
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
    if not marts.has("seats_by_sku", "wasted_seats_by_sku", "inactive_users"):
        print(
            f"\nNo license insight in schema {args.marts}: run `meltano run dbt-duckdb:run`"
            " (transform/)"
        )
        return 1
    seats(marts)
    wasted(marts)
    inactive(marts)
    group_errors(marts)
    freshness(marts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
