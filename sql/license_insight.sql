-- License insight for PostgreSQL: which Microsoft 365 seats are wasted.
--
-- Plain views over the tables tap-microsoft365 loads with target-postgres. They live in the
-- schema the tables are in: the one target-postgres loads into, `default_target_schema` in
-- meltano.yml, which defaults to the extractor's namespace `tap_microsoft365` (the `sandbox`
-- environment uses `tap_microsoft365_sandbox`). Run this file with that schema first in the
-- search_path; running it again replaces the views (and keeps your settings):
--
--   PGOPTIONS='-c search_path=tap_microsoft365' psql "$DATABASE_URL" -v ON_ERROR_STOP=1 \
--       -f sql/license_insight.sql
--
-- Tables it reads (select these streams; all are selected by default):
--   subscribed_skus, users, groups, license_assignments   (directory, every run)
--   office365_active_user_detail, teams_user_activity_user_detail   (usage reports)
-- Loader settings it relies on (meltano.yml's defaults): add_record_metadata true (the
-- `_sdc_deleted_at` column marks rows the tap reported gone, or that ACTIVATE_VERSION retired),
-- and a load_method other than `overwrite` (which drops tables, and these views with them).
--
-- What it answers:
--   license_sku_seats            per SKU: purchased (enabled), warning, suspended, locked-out,
--                                consumed and available units
--   license_user_activity        per user: last activity per workload and overall, from the
--                                latest usage report row
--   license_seat_activity        per user and SKU held: last activity and days inactive
--   license_inactive_seats       seats of users inactive more than N days (N in
--                                license_insight_settings, 90 by default)
--   license_seats_inactive_for(n) the same for any N, e.g. license_seats_inactive_for(30)
--   license_disabled_account_seats seats held by disabled accounts
--   license_group_errors         group-based assignments that failed (CountViolation, ...)
--   license_wasted_seats_by_sku  per paid SKU: unassigned + disabled + inactive = wasted
--   license_report_status        how fresh the usage data is and whether names are concealed
--
-- How inactivity is measured. The usage reports give, per user and workload (Exchange,
-- OneDrive, SharePoint, Skype for Business, Viva Engage/Yammer, Teams), the last day with
-- activity; the latest report day is the "as of" date (reports lag Graph's data by 2 to 3 days,
-- so counting from it, not from today, is fair). A user's last activity is the latest of all
-- workloads, and a seat's days inactive are counted from it, or, for a user never active, from
-- the day the license was assigned. Products without a usage report of their own (Power BI,
-- Visio, Project, EMS) are judged by the user's Microsoft 365 activity as a whole: someone idle
-- everywhere does not use them either; an active user may still not need them.
--
-- Concealed report names (the tenant default since 2021, see the README): report rows carry
-- hashed user principal names that do not join users. What still joins is the Teams report's
-- User Id, so then only Teams activity counts (activity_basis = 'Teams only'): a user active
-- only in mail or files looks inactive, and a user absent from the Teams report is not judged
-- (days_inactive null). Per-workload columns other than Teams are null. license_report_status
-- says which case applies.

DO $check$
BEGIN
    IF to_regclass(format('%I.license_assignments', current_schema())) IS NULL THEN
        RAISE EXCEPTION 'license_assignments is not in schema % (search_path: %)',
            current_schema(), current_setting('search_path')
            USING HINT = 'Set search_path to the schema target-postgres loads into, e.g. '
                         'PGOPTIONS=''-c search_path=tap_microsoft365'' psql -f ...';
    END IF;
END
$check$;

-- Settings: one row; change it with UPDATE, it survives re-running this file.
CREATE TABLE IF NOT EXISTS license_insight_settings (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- A seat is inactive when its user did nothing for more than this many days.
    inactive_days integer NOT NULL DEFAULT 90 CHECK (inactive_days >= 0),
    -- Free or viral products: their unassigned units are not wasted money.
    free_sku_part_numbers text[] NOT NULL DEFAULT ARRAY[
        'FLOW_FREE', 'POWER_BI_STANDARD', 'POWERAPPS_VIRAL', 'POWERAPPS_DEV',
        'TEAMS_EXPLORATORY', 'STREAM', 'WINDOWS_STORE', 'CCIBOTS_PRIVPREV_VIRAL',
        'RIGHTSMANAGEMENT_ADHOC', 'MCOPSTNC'
    ]
);
INSERT INTO license_insight_settings DEFAULT VALUES ON CONFLICT (only_row) DO NOTHING;

DROP FUNCTION IF EXISTS license_seats_inactive_for(integer);
DROP VIEW IF EXISTS license_wasted_seats_by_sku;
DROP VIEW IF EXISTS license_group_errors;
DROP VIEW IF EXISTS license_disabled_account_seats;
DROP VIEW IF EXISTS license_inactive_seats;
DROP VIEW IF EXISTS license_seat_activity;
DROP VIEW IF EXISTS license_user_activity;
DROP VIEW IF EXISTS license_report_status;
DROP VIEW IF EXISTS license_sku_seats;

-- Per SKU the tenant has: units by state. available = enabled - consumed (negative when more
-- are assigned than active, e.g. into units in their grace period).
CREATE VIEW license_sku_seats AS
SELECT
    s.sku_id,
    s.sku_part_number,
    coalesce(s.product_display_name, s.sku_part_number) AS product_name,
    s.product_display_name,
    s.capability_status,
    s.applies_to,
    coalesce((s.prepaid_units ->> 'enabled')::integer, 0) AS purchased_units,
    coalesce((s.prepaid_units ->> 'warning')::integer, 0) AS warning_units,
    coalesce((s.prepaid_units ->> 'suspended')::integer, 0) AS suspended_units,
    coalesce((s.prepaid_units ->> 'lockedOut')::integer, 0) AS locked_out_units,
    coalesce(s.consumed_units, 0)::integer AS consumed_units,
    coalesce((s.prepaid_units ->> 'enabled')::integer, 0)
        - coalesce(s.consumed_units, 0)::integer AS available_units,
    s.sku_part_number = ANY (st.free_sku_part_numbers) AS is_free
FROM subscribed_skus AS s
CROSS JOIN license_insight_settings AS st
WHERE s._sdc_deleted_at IS NULL;

-- The usage data's date, and whether its names can be joined to users.
CREATE VIEW license_report_status AS
WITH latest AS (
    SELECT max(report_date) AS day FROM office365_active_user_detail
)
SELECT
    coalesce(
        latest.day, (SELECT max(report_date) FROM teams_user_activity_user_detail)
    ) AS activity_as_of,
    (SELECT count(*) FROM office365_active_user_detail AS r WHERE r.report_date = latest.day)
        AS office365_rows,
    coalesce(
        (
            SELECT bool_and(r.user_principal_name ~ '^[0-9A-F]{32}$')
            FROM office365_active_user_detail AS r
            WHERE r.report_date = latest.day
        ),
        false
    ) AS names_concealed,
    (
        SELECT count(*) FROM teams_user_activity_user_detail AS t
        WHERE t.report_date = (SELECT max(report_date) FROM teams_user_activity_user_detail)
    ) AS teams_rows
FROM latest;

-- Per current user: the last activity per workload from their latest report rows.
CREATE VIEW license_user_activity AS
WITH office AS (
    SELECT DISTINCT ON (lower(r.user_principal_name))
        lower(r.user_principal_name) AS upn,
        r.report_date,
        r.exchange_last_activity_date,
        r.onedrive_last_activity_date,
        r.sharepoint_last_activity_date,
        r.skype_for_business_last_activity_date,
        r.yammer_last_activity_date,
        r.teams_last_activity_date
    FROM office365_active_user_detail AS r
    WHERE r.user_principal_name LIKE '%@%'  -- concealed (hashed) names cannot join
    ORDER BY lower(r.user_principal_name), r.report_date DESC
),
teams AS (
    SELECT DISTINCT ON (lower(t.user_id))
        lower(t.user_id) AS user_id,
        t.report_date,
        t.last_activity_date
    FROM teams_user_activity_user_detail AS t
    WHERE coalesce(t.user_id, '') <> ''
    ORDER BY lower(t.user_id), t.report_date DESC
)
SELECT
    u.id AS user_id,
    u.user_principal_name,
    u.display_name,
    u.department,
    u.account_enabled,
    u.user_type,
    o.exchange_last_activity_date AS exchange_last_activity,
    o.onedrive_last_activity_date AS onedrive_last_activity,
    o.sharepoint_last_activity_date AS sharepoint_last_activity,
    o.skype_for_business_last_activity_date AS skype_for_business_last_activity,
    o.yammer_last_activity_date AS yammer_last_activity,
    greatest(o.teams_last_activity_date, t.last_activity_date) AS teams_last_activity,
    greatest(
        o.exchange_last_activity_date,
        o.onedrive_last_activity_date,
        o.sharepoint_last_activity_date,
        o.skype_for_business_last_activity_date,
        o.yammer_last_activity_date,
        o.teams_last_activity_date,
        t.last_activity_date
    ) AS last_activity_date,
    CASE
        WHEN o.upn IS NOT NULL THEN 'all workloads'
        WHEN t.user_id IS NOT NULL THEN 'Teams only'
        ELSE 'not in reports'
    END AS activity_basis,
    s.activity_as_of
FROM users AS u
LEFT JOIN office AS o ON o.upn = lower(u.user_principal_name)
LEFT JOIN teams AS t ON t.user_id = lower(u.id)
CROSS JOIN license_report_status AS s
WHERE u._sdc_deleted_at IS NULL;

-- Per user and SKU the user holds (it consumes a unit): activity and days inactive.
CREATE VIEW license_seat_activity AS
SELECT
    la.user_id,
    la.user_principal_name,
    a.display_name,
    a.department,
    la.account_enabled,
    la.user_type,
    la.sku_id,
    coalesce(la.sku_part_number, k.sku_part_number) AS sku_part_number,
    coalesce(la.product_display_name, k.product_display_name, la.sku_part_number, k.sku_part_number)
        AS product_name,
    la.assigned_directly,
    la.assigned_by_groups,
    la.state,
    la.error,
    la.assigned_date_time,
    a.exchange_last_activity,
    a.onedrive_last_activity,
    a.sharepoint_last_activity,
    a.skype_for_business_last_activity,
    a.yammer_last_activity,
    a.teams_last_activity,
    a.last_activity_date,
    coalesce(a.activity_basis, 'not in reports') AS activity_basis,
    s.activity_as_of,
    CASE WHEN coalesce(a.activity_basis, 'not in reports') <> 'not in reports' THEN
        greatest(
            0,
            s.activity_as_of - coalesce(
                a.last_activity_date,
                la.assigned_date_time::date,
                la.last_updated_date_time::date
            )
        )
    END AS days_inactive
FROM license_assignments AS la
LEFT JOIN license_user_activity AS a ON a.user_id = la.user_id
LEFT JOIN license_sku_seats AS k ON k.sku_id = la.sku_id
CROSS JOIN license_report_status AS s
WHERE la._sdc_deleted_at IS NULL AND la.consumes_unit;

-- Seats of users inactive for more than license_insight_settings.inactive_days.
CREATE VIEW license_inactive_seats AS
SELECT sa.*
FROM license_seat_activity AS sa
WHERE sa.days_inactive > (SELECT inactive_days FROM license_insight_settings);

-- The same for any number of days: SELECT * FROM license_seats_inactive_for(30);
CREATE FUNCTION license_seats_inactive_for(min_days integer)
RETURNS SETOF license_seat_activity
LANGUAGE sql STABLE
SET search_path FROM CURRENT
AS $$
    SELECT * FROM license_seat_activity WHERE days_inactive > min_days
$$;

-- Seats held by accounts that cannot sign in.
CREATE VIEW license_disabled_account_seats AS
SELECT sa.*
FROM license_seat_activity AS sa
WHERE sa.account_enabled IS FALSE;

-- Group-based assignments that failed: one row per (user, SKU, group) in error. The user may
-- still hold the SKU through another assignment (user_holds_license).
CREATE VIEW license_group_errors AS
SELECT
    la.user_id,
    la.user_principal_name,
    la.account_enabled,
    la.sku_id,
    coalesce(la.sku_part_number, k.sku_part_number) AS sku_part_number,
    coalesce(la.product_display_name, k.product_display_name, la.sku_part_number, k.sku_part_number)
        AS product_name,
    p.path ->> 'assignedByGroup' AS group_id,
    g.display_name AS group_display_name,
    p.path ->> 'state' AS state,
    p.path ->> 'error' AS error,
    (p.path ->> 'lastUpdatedDateTime')::timestamptz AS last_updated_date_time,
    la.consumes_unit AS user_holds_license
FROM license_assignments AS la
CROSS JOIN LATERAL unnest(la.assignments) AS p (path)
LEFT JOIN groups AS g ON g.id = p.path ->> 'assignedByGroup' AND g._sdc_deleted_at IS NULL
LEFT JOIN license_sku_seats AS k ON k.sku_id = la.sku_id
WHERE
    la._sdc_deleted_at IS NULL
    AND p.path ->> 'assignedByGroup' IS NOT NULL
    AND coalesce(p.path ->> 'error', 'None') NOT IN ('None', '');

-- Per paid, user-assignable SKU: seats nobody uses. Unassigned units, seats of disabled
-- accounts, and seats of enabled users inactive for more than inactive_days; each seat is
-- counted once.
CREATE VIEW license_wasted_seats_by_sku AS
WITH seats AS (
    SELECT
        sa.sku_id,
        count(*) AS assigned_seats,
        count(*) FILTER (WHERE sa.account_enabled IS FALSE) AS disabled_account_seats,
        count(*) FILTER (
            WHERE sa.account_enabled IS NOT FALSE AND sa.days_inactive > st.inactive_days
        ) AS inactive_user_seats
    FROM license_seat_activity AS sa
    CROSS JOIN license_insight_settings AS st
    GROUP BY sa.sku_id
)
SELECT
    k.sku_id,
    k.sku_part_number,
    k.product_name,
    k.purchased_units,
    k.consumed_units,
    greatest(k.available_units, 0) AS unassigned_seats,
    coalesce(seats.disabled_account_seats, 0) AS disabled_account_seats,
    coalesce(seats.inactive_user_seats, 0) AS inactive_user_seats,
    greatest(k.available_units, 0)
        + coalesce(seats.disabled_account_seats, 0)
        + coalesce(seats.inactive_user_seats, 0) AS wasted_seats,
    round(
        100.0 * (
            greatest(k.available_units, 0)
            + coalesce(seats.disabled_account_seats, 0)
            + coalesce(seats.inactive_user_seats, 0)
        ) / nullif(k.purchased_units, 0),
        1
    ) AS wasted_percent,
    st.inactive_days
FROM license_sku_seats AS k
LEFT JOIN seats ON seats.sku_id = k.sku_id
CROSS JOIN license_insight_settings AS st
WHERE k.applies_to = 'User' AND NOT k.is_free;

-- Top wasted seats by SKU (what the README and the demo show):
--
--   SELECT product_name, purchased_units, consumed_units, unassigned_seats,
--          disabled_account_seats, inactive_user_seats, wasted_seats, wasted_percent
--   FROM license_wasted_seats_by_sku
--   ORDER BY wasted_seats DESC, product_name
--   LIMIT 10;
