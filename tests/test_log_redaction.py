"""Redaction masks every secret in every log line and leaves log records intact (issue 11 item 4).

The SDK's metrics are log records whose `args[0]` is the metric point: its `MetricExclusionFilter`
and its JSON log format (`singer_sdk.logging.StructuredFormatter`, chosen with a logging config
file named by SINGER_SDK_LOG_CONFIG) read it. Masking must keep that point, while no secret may
appear in any line at INFO or DEBUG, in the plain format or in JSON.
"""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest
from singer_sdk import metrics
from singer_sdk.logging import StructuredFormatter

from tap_microsoft365 import redaction
from tests.conftest import RECENT_START
from tests.singer_run import catalog_selecting, run_tap
from tests.test_secrets import assert_no_secrets

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.graph_emulator import GraphEmulator

SECRET = "Qv7~log-redaction-secret-value-41c"
REPORT = "office365_active_user_detail"


def json_logger(name: str, *filters: logging.Filter) -> tuple[logging.Logger, io.StringIO]:
    """A logger printing the SDK's JSON log format into a buffer, with the tap's redaction."""
    redaction.install()
    redaction.register_secret(SECRET)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(StructuredFormatter())
    for log_filter in filters:
        handler.addFilter(log_filter)
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    redaction.protect_handlers(logger)
    return logger, out


def test_a_metric_record_keeps_its_point_in_the_json_format() -> None:
    logger, out = json_logger("test.metrics.json")
    point = metrics.Point(
        "counter",
        metrics.Metric.HTTP_REQUEST_COUNT,
        7,
        {"stream": "users", "endpoint": f"/data/download/{SECRET}"},
    )

    metrics.log(logger, point)

    line = json.loads(out.getvalue())
    assert line["message"] == "METRIC"
    assert line["metric_info"]["metric"] == "http_request_count"
    assert line["metric_info"]["value"] == 7
    assert line["metric_info"]["tags"]["stream"] == "users"
    assert SECRET not in out.getvalue()  # a tag holding a secret is masked in the point
    assert point.tags["endpoint"] == f"/data/download/{SECRET}"  # the meter's own is untouched


def test_the_sdks_metric_filter_still_sees_the_point() -> None:
    excluded = metrics.MetricExclusionFilter(metrics=["http_request_count"])
    logger, out = json_logger("test.metrics.filter", excluded)

    metrics.log(logger, metrics.Point("counter", metrics.Metric.HTTP_REQUEST_COUNT, 1, {}))
    metrics.log(logger, metrics.Point("counter", metrics.Metric.RECORD_COUNT, 2, {}))

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["metric_info"]["metric"] for line in lines] == ["record_count"]


def test_a_record_without_a_secret_is_left_as_it_was() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s rows of %s", (3, "users"), None)

    redaction.redact_record(record)

    assert record.msg == "%s rows of %s"
    assert record.args == (3, "users")


def test_secrets_are_masked_in_messages_args_extras_and_exceptions() -> None:
    logger, out = json_logger("test.secrets.json")

    logger.info("secret %s", SECRET)
    logger.debug("token", extra={"request": {"Authorization": f"Bearer {SECRET}"}})
    try:
        raise ValueError(f"client_secret={SECRET}")
    except ValueError:
        logger.exception("failed")

    text = out.getvalue()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["message"] == "secret ***"
    assert "Bearer ***" in str(lines[1]["extra"]["request"])
    assert lines[2]["message"] == "failed"


LOG_CONFIG = """\
version: 1
disable_existing_loggers: false
formatters:
  json:
    (): singer_sdk.logging.StructuredFormatter
handlers:
  stderr:
    class: logging.StreamHandler
    formatter: json
    stream: ext://sys.stderr
root:
  level: {level}
  handlers: [stderr]
"""


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_a_run_prints_no_secret_and_keeps_its_metrics(
    fresh_emulator: Callable[..., GraphEmulator], tmp_path: Path, level: str, log_format: str
) -> None:
    emu = fresh_emulator(users=30, groups=2)
    config = emu.config(**RECENT_START)
    env = {"TAP_MICROSOFT365_LOGLEVEL": level, "LOGLEVEL": level}
    if log_format == "json":
        (tmp_path / "logging.yaml").write_text(LOG_CONFIG.format(level=level))
        env["SINGER_SDK_LOG_CONFIG"] = str(tmp_path / "logging.yaml")
    catalog = catalog_selecting({}, {"users", REPORT})

    result = run_tap(config, ca_bundle=emu.ca_bundle, catalog=catalog, env=env)

    assert result.exit_code == 0, result.stderr[-3000:]
    assert result.records("users")
    assert result.records(REPORT)
    assert_no_secrets(result, emu, config)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if log_format == "plain":
        assert any("METRIC: {" in line for line in lines)
        return
    parsed: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith("{"):
            parsed.append(json.loads(line))
    metric_lines = [line for line in parsed if line["message"] == "METRIC"]
    assert metric_lines, "no METRIC line in the JSON log"
    assert all("metric_info" in line for line in metric_lines)
    counted = {
        line["metric_info"]["tags"].get("stream")
        for line in metric_lines
        if line["metric_info"]["metric"] == "record_count"
    }
    assert {"users", REPORT} <= counted
    if level == "DEBUG":
        assert any(line["level"] == "debug" for line in parsed)
