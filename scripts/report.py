"""Write the license insight as one self-contained HTML page with charts (inline SVG).

    .venv/bin/python scripts/report.py output/sandbox.duckdb [--out output/license-report.html]

It reads the dbt marts (transform/, schema `license_insight`) and draws, per tenant (a section
each, named by the tenant's display name when the organization stream was loaded, else its id),
with no script and nothing fetched from the network: seats by product (purchased, assigned,
active), wasted seats by product (unassigned, disabled accounts, inactive users, unused Copilot)
with their monthly cost when prices are given, Microsoft 365 Copilot seats (assigned, used, never
used, wasted) when the tenant has any, and daily active users per workload over the report days.
`make demo` and `make tenant` write it to output/license-report.html.
"""

from __future__ import annotations

import argparse
import sys
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:
    import datetime as dt

COLORS = ("#1f6feb", "#8957e5", "#2da44e", "#d1242f", "#bf8700", "#57606a")
WORKLOAD_NAMES = {
    "exchange": "Exchange",
    "onedrive": "OneDrive",
    "sharepoint": "SharePoint",
    "skype_for_business": "Skype for Business",
    "yammer": "Viva Engage",
    "teams": "Teams",
}


def legend(names: list[str], x: float, y: float) -> str:
    """A row of colour keys."""
    parts = []
    for i, name in enumerate(names):
        left = x + i * 140
        parts.append(
            f'<rect x="{left}" y="{y - 10}" width="12" height="12" fill="{COLORS[i]}"/>'
            f'<text x="{left + 18}" y="{y}">{escape(name)}</text>'
        )
    return "".join(parts)


def bar_chart(
    chart: str,
    tenant_id: str,
    title: str,
    labels: list[str],
    series: dict[str, list[float]],
    *,
    unit: str = "",
) -> str:
    """Horizontal grouped bars: one group per label, one bar per series."""
    label_width, bar_height, gap, width = 260, 12, 10, 900
    group = bar_height * len(series) + gap
    height = 60 + group * len(labels)
    top = max((v for values in series.values() for v in values), default=0) or 1
    scale = (width - label_width - 90) / top
    rows = []
    for i, label in enumerate(labels):
        y0 = 40 + i * group
        rows.append(
            f'<text x="{label_width - 8}" y="{y0 + bar_height * len(series) / 2 + 4}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
        for j, (name, values) in enumerate(series.items()):
            value = values[i]
            y = y0 + j * bar_height
            rows.append(
                f'<rect class="bar" data-series="{escape(name)}" data-label="{escape(label)}" '
                f'data-value="{value:g}" x="{label_width}" y="{y}" '
                f'width="{max(value * scale, 0.5):.1f}" height="{bar_height - 2}" '
                f'fill="{COLORS[j]}"><title>{escape(label)}: {escape(name)} {value:g}{unit}'
                f"</title></rect>"
                f'<text x="{label_width + value * scale + 4:.1f}" y="{y + bar_height - 3}" '
                f'class="value">{value:g}{escape(unit)}</text>'
            )
    return (
        f'<figure id="{chart}-{escape(tenant_id)}" data-chart="{chart}">'
        f"<figcaption>{escape(title)}</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"{legend(list(series), label_width, 20)}{''.join(rows)}</svg></figure>"
    )


def line_chart(
    chart: str, tenant_id: str, title: str, days: list[dt.date], series: dict[str, list[int]]
) -> str:
    """One line per series over the days."""
    width, height, left, bottom, top_margin = 900, 320, 50, 40, 40
    top = max((v for values in series.values() for v in values), default=0) or 1
    x_step = (width - left - 20) / max(len(days) - 1, 1)
    y_scale = (height - bottom - top_margin) / top

    def point(i: int, value: int) -> str:
        return f"{left + i * x_step:.1f},{height - bottom - value * y_scale:.1f}"

    lines = []
    for j, (name, values) in enumerate(series.items()):
        points = " ".join(point(i, v) for i, v in enumerate(values))
        lines.append(
            f'<polyline class="line" data-series="{escape(name)}" points="{points}" '
            f'fill="none" stroke="{COLORS[j % len(COLORS)]}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
    axis = (
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 20}" y2="{height - bottom}" '
        f'stroke="#888"/><text x="{left - 6}" y="{top_margin + 4}" text-anchor="end">{top}</text>'
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>'
    )
    if days:
        axis += (
            f'<text x="{left}" y="{height - 20}">{days[0].isoformat()}</text>'
            f'<text x="{width - 20}" y="{height - 20}" text-anchor="end">'
            f"{days[-1].isoformat()}</text>"
        )
    return (
        f'<figure id="{chart}-{escape(tenant_id)}" data-chart="{chart}">'
        f"<figcaption>{escape(title)}</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"{legend(list(series), left, 20)}{axis}{''.join(lines)}</svg></figure>"
    )


def rows(
    db: duckdb.DuckDBPyConnection, marts: str, sql: str, params: list[Any] | None = None
) -> list[tuple[Any, ...]]:
    """The rows of one of this module's statements; `{m}` is the marts' schema."""
    return db.execute(sql.replace("{m}", marts), params or []).fetchall()


def tenant_section(db: duckdb.DuckDBPyConnection, marts: str, tenant_id: str, name: str) -> str:
    """One tenant's summary and charts (every mart is per tenant: its tenant_id)."""
    seats = rows(
        db,
        marts,
        "select product_name, purchased_units, assigned_units, active_seats from {m}.seats_by_sku"
        " where tenant_id = ? and applies_to = 'User' and not is_free"
        " order by purchased_units desc, product_name",
        [tenant_id],
    )
    wasted = rows(
        db,
        marts,
        "select product_name, unassigned_seats, disabled_account_seats, inactive_user_seats,"
        " wasted_seats, wasted_monthly_cost, currency, inactive_days, unused_copilot_seats"
        " from {m}.wasted_seats_by_sku where tenant_id = ?"
        " order by wasted_seats desc, product_name",
        [tenant_id],
    )
    daily = rows(
        db,
        marts,
        "select report_date, workload, active_users from {m}.daily_active_users"
        " where tenant_id = ? order by report_date, workload",
        [tenant_id],
    )
    charts = [
        bar_chart(
            "seats",
            tenant_id,
            "Seats by product: purchased, assigned, active",
            [r[0] for r in seats],
            {
                "purchased": [r[1] for r in seats],
                "assigned": [r[2] for r in seats],
                "active users": [r[3] for r in seats],
            },
        ),
        bar_chart(
            "wasted",
            tenant_id,
            "Wasted seats by product",
            [r[0] for r in wasted],
            {
                "unassigned": [r[1] for r in wasted],
                "disabled accounts": [r[2] for r in wasted],
                "inactive users": [r[3] for r in wasted],
                "unused Copilot": [r[8] for r in wasted],
            },
        ),
    ]
    copilot = rows(
        db,
        marts,
        "select product_name, count(*), count(*) filter (where in_use),"
        " count(*) filter (where copilot_last_activity_date is null"
        " and copilot_days_inactive is not null),"
        " count(*) filter (where wasted_reason is not null)"
        " from {m}.copilot_seats where tenant_id = ? group by product_name order by product_name",
        [tenant_id],
    )
    if copilot:
        charts.append(
            bar_chart(
                "copilot",
                tenant_id,
                "Microsoft 365 Copilot seats: assigned, used Copilot, never used, wasted",
                [r[0] for r in copilot],
                {
                    "assigned": [r[1] for r in copilot],
                    "used Copilot": [r[2] for r in copilot],
                    "never used": [r[3] for r in copilot],
                    "wasted": [r[4] for r in copilot],
                },
            )
        )
    priced = [r for r in wasted if r[5] is not None]
    if priced:
        currency = priced[0][6]
        charts.append(
            bar_chart(
                "money",
                tenant_id,
                f"Wasted money per month by product ({currency})",
                [r[0] for r in priced],
                {"wasted per month": [float(r[5]) for r in priced]},
                unit=f" {currency}",
            )
        )
    days = sorted({r[0] for r in daily})
    by_day = {(r[0], r[1]): r[2] for r in daily}
    workloads = [w for w in WORKLOAD_NAMES if any(r[1] == w for r in daily)]
    charts.append(
        line_chart(
            "daily",
            tenant_id,
            "Daily active users per workload",
            days,
            {WORKLOAD_NAMES[w]: [by_day.get((d, w), 0) for d in days] for w in workloads},
        )
    )
    total = sum(r[4] for r in wasted)
    money = sum(float(r[5]) for r in priced)
    days_inactive = wasted[0][7] if wasted else ""
    summary = (
        f"{total} wasted seats (unassigned, disabled accounts, inactive or, for Copilot, unused"
        f" over {days_inactive} days)"
    )
    if priced:
        summary += f"; {money:.2f} {escape(str(priced[0][6]))} per month"
    return (
        f'<section class="tenant" id="tenant-{escape(tenant_id)}"'
        f' data-tenant-id="{escape(tenant_id)}"><h2>{escape(name)}</h2>'
        f'<p class="summary">{summary}</p>{"".join(charts)}</section>\n'
    )


def build(db: duckdb.DuckDBPyConnection, marts: str) -> str:
    """The page: a section per tenant, named as the tenants mart names it (its display name when
    the organization stream was loaded, else its id)."""
    tenants = rows(db, marts, "select tenant_id, tenant_name from {m}.tenants order by 2, 1")
    sections = [tenant_section(db, marts, tenant_id, name) for tenant_id, name in tenants]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Microsoft 365 license report</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #1f2328; }}
figure {{ margin: 24px 0; }} figcaption {{ font-weight: 600; margin-bottom: 8px; }}
svg text {{ font: 12px system-ui, sans-serif; fill: #1f2328; }} svg text.value {{ fill: #57606a; }}
</style></head><body>
<h1>Microsoft 365 license report</h1>
{"".join(sections) or "<p>No tenant loaded.</p>"}
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    """Write the page for one DuckDB file."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("database")
    parser.add_argument("--marts", default="license_insight")
    parser.add_argument("--out", type=Path, default=Path("output") / "license-report.html")
    args = parser.parse_args(argv)
    with duckdb.connect(args.database, read_only=True) as db:
        page = build(db, f'"{args.marts}"')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page, encoding="utf-8")
    print(f"\nLicense report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
