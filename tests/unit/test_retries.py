"""retries.py: Retry-After parsing, backoff bounds, unreachable hosts, and the retry decisions.

Time is controlled by constructing `Retries` with an explicit `started` (a monotonic instant in
the past), never by patching the tap's functions.
"""

from __future__ import annotations

import re
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING

import pytest
import requests
import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from tap_microsoft365.retries import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_WAIT_SECONDS,
    LONGEST_BACKOFF_SECONDS,
    GiveUpError,
    Retries,
    RetryPolicy,
    backoff_seconds,
    is_unreachable,
    parse_retry_after,
    retry_after_seconds,
)
from tests.unit.responses import response

if TYPE_CHECKING:
    from collections.abc import Callable

# --------------------------------------------------------------------------------------------
# Retry-After
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10", 10.0),
        ("0", 0.0),
        ("2.5", 2.5),
        (" 7 ", 7.0),  # float() tolerates the white space a proxy may leave
        ("-5", 0.0),  # never a negative wait
        (None, None),
        ("", None),
        ("soon", None),
        ("Thu, 99 Foo 2026 99:99:99 GMT", None),
    ],
)
def test_parse_retry_after_seconds_and_garbage(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    # RFC 9110 section 10.2.3: Retry-After = HTTP-date / delay-seconds.
    when = datetime.now(UTC) + timedelta(seconds=120)
    seconds = parse_retry_after(format_datetime(when, usegmt=True))
    assert seconds is not None
    # The header has whole seconds: at most 1 s lost to truncation, a little to the clock.
    assert 117.0 <= seconds <= 120.0


def test_parse_retry_after_http_date_in_the_past_is_no_wait() -> None:
    assert parse_retry_after("Thu, 01 Jan 2015 00:00:00 GMT") == 0.0


def test_parse_retry_after_date_without_zone_is_read_as_gmt() -> None:
    when = datetime.now(UTC) + timedelta(seconds=60)
    # "-0000" makes email.utils return a naive datetime; an HTTP date is always GMT.
    naive = when.strftime("%a, %d %b %Y %H:%M:%S -0000")
    seconds = parse_retry_after(naive)
    assert seconds is not None
    assert 57.0 <= seconds <= 60.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "30"}, 30.0), ({"retry-after": "4"}, 4.0), ({}, None)],
)
def test_retry_after_seconds_reads_the_header(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after_seconds(response(429, headers=headers)) == expected


def test_retry_after_seconds_without_a_response() -> None:
    assert retry_after_seconds(None) is None


# --------------------------------------------------------------------------------------------
# Backoff
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "full"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (7, 60.0), (8, 60.0), (30, 60.0)],
)
def test_backoff_is_exponential_capped_with_jitter_of_half_to_all(retry: int, full: float) -> None:
    waits = [backoff_seconds(retry) for _ in range(300)]
    assert all(full / 2 <= wait <= full for wait in waits)
    assert max(waits) <= LONGEST_BACKOFF_SECONDS
    # Jitter: parallel runs do not retry in lockstep.
    assert len(set(waits)) > 1


# --------------------------------------------------------------------------------------------
# Unreachable hosts
# --------------------------------------------------------------------------------------------

_POOL = HTTPConnectionPool("login.example.invalid", 443)
_CONN = HTTPConnection("login.example.invalid", 443)


def _refused() -> requests.exceptions.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(
        _CONN, "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(_POOL, "/token", reason)
    )


def _unknown_host() -> requests.exceptions.ConnectionError:
    reason = urllib3.exceptions.NameResolutionError(
        "login.example.invalid", _CONN, socket.gaierror(-2, "Name or service not known")
    )
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(_POOL, "/token", reason)
    )


def _reset() -> requests.exceptions.ConnectionError:
    reason = urllib3.exceptions.ProtocolError(
        "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
    )
    return requests.exceptions.ConnectionError(reason)


def _read_timeout() -> requests.exceptions.ReadTimeout:
    return requests.exceptions.ReadTimeout(
        urllib3.exceptions.ReadTimeoutError(_POOL, "/token", "Read timed out. (read timeout=60)")
    )


def _bare_new_connection_error() -> requests.exceptions.ConnectionError:
    # Not wrapped in MaxRetryError: the reason is the argument itself.
    return requests.exceptions.ConnectionError(
        urllib3.exceptions.NewConnectionError(_CONN, "Connection refused")
    )


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (_refused, True),
        (_unknown_host, True),
        (_bare_new_connection_error, True),
        (lambda: requests.exceptions.ConnectTimeout("connect timed out"), True),
        (lambda: requests.exceptions.ProxyError("proxy unreachable"), True),
        (_reset, False),
        (_read_timeout, False),
        (requests.exceptions.ConnectionError, False),  # no args at all
        (lambda: requests.exceptions.ChunkedEncodingError("cut off"), False),
        (lambda: requests.exceptions.SSLError("bad certificate"), False),
        (lambda: ValueError("not a requests error"), False),
    ],
    ids=[
        "refused",
        "unknown-host",
        "bare-new-connection-error",
        "connect-timeout",
        "proxy-error",
        "reset",
        "read-timeout",
        "connection-error-without-args",
        "chunked-encoding",
        "ssl",
        "other",
    ],
)
def test_is_unreachable(build: Callable[[], BaseException], expected: bool) -> None:
    assert is_unreachable(build()) is expected


# --------------------------------------------------------------------------------------------
# RetryPolicy.from_config
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "attempts", "wait"),
    [
        ({}, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_WAIT_SECONDS),
        ({"retry_max_attempts": None, "retry_max_wait_seconds": None}, 8, 900.0),
        ({"retry_max_attempts": 3, "retry_max_wait_seconds": 30}, 3, 30.0),
        ({"retry_max_attempts": "5", "retry_max_wait_seconds": "12.5"}, 5, 12.5),
        ({"retry_max_attempts": -4}, 1, 900.0),  # at least the one attempt
        ({"retry_max_attempts": 1}, 1, 900.0),
    ],
)
def test_retry_policy_from_config(config: dict[str, object], attempts: int, wait: float) -> None:
    policy = RetryPolicy.from_config(config)
    assert policy == RetryPolicy(max_attempts=attempts, max_wait_seconds=wait)


def test_policy_start_is_fresh_bookkeeping() -> None:
    retries = RetryPolicy(max_attempts=4).start()
    assert (retries.attempts, retries.errors_500, retries.unreachable) == (1, 0, 0)
    assert 0.0 <= retries.elapsed < 5.0


# --------------------------------------------------------------------------------------------
# Retries.next_wait
# --------------------------------------------------------------------------------------------


def _retries(max_attempts: int = 8, max_wait: float = 900.0, elapsed: float = 0.0) -> Retries:
    return Retries(
        RetryPolicy(max_attempts=max_attempts, max_wait_seconds=max_wait),
        started=time.monotonic() - elapsed,
    )


def test_a_500_is_tried_at_most_three_times() -> None:
    retries = _retries()
    assert retries.next_wait(status=500, retry_after=1.0) == 1.0
    assert retries.next_wait(status=500, retry_after=1.0) == 1.0
    with pytest.raises(GiveUpError, match=r"after 3 attempts \(a 500 is tried at most 3 times\)"):
        retries.next_wait(status=500, retry_after=1.0)


def test_other_faults_between_500s_do_not_reset_the_500_count() -> None:
    retries = _retries()
    retries.next_wait(status=500, retry_after=0.0)
    retries.next_wait(status=503, retry_after=0.0)
    retries.next_wait(status=None, retry_after=0.0)  # a reset: no answer
    assert retries.next_wait(status=500, retry_after=0.0) == 0.0  # the second 500
    with pytest.raises(GiveUpError, match=r"after 5 attempts \(a 500 is tried at most 3 times\)"):
        retries.next_wait(status=500, retry_after=0.0)


def test_a_503_is_retried_up_to_max_attempts() -> None:
    retries = _retries(max_attempts=8)
    waits = [retries.next_wait(status=503, retry_after=0.5) for _ in range(7)]
    assert waits == [0.5] * 7
    assert retries.attempts == 8
    with pytest.raises(GiveUpError, match=r"after 8 attempts \(retry_max_attempts\)"):
        retries.next_wait(status=503, retry_after=0.5)


def test_unreachable_is_tried_at_most_three_times() -> None:
    retries = _retries(max_attempts=8)
    assert retries.next_wait(unreachable=True, retry_after=0.0) == 0.0
    assert retries.next_wait(unreachable=True, retry_after=0.0) == 0.0
    with pytest.raises(GiveUpError, match=r"^after 3 attempts$"):
        retries.next_wait(unreachable=True, retry_after=0.0)


@pytest.mark.parametrize("max_attempts", [1, 2, 5])
def test_max_attempts_caps_every_kind_of_retry(max_attempts: int) -> None:
    retries = _retries(max_attempts=max_attempts)
    for _ in range(max_attempts - 1):
        retries.next_wait(status=429, retry_after=0.0)
    with pytest.raises(GiveUpError, match=rf"after {max_attempts} attempts \(retry_max_attempts\)"):
        retries.next_wait(status=429, retry_after=0.0)


def test_max_attempts_one_never_retries_even_now_after_401() -> None:
    with pytest.raises(GiveUpError, match=r"retry_max_attempts"):
        _retries(max_attempts=1).next_wait(status=401, now=True)


def test_retry_after_is_waited_out_exactly() -> None:
    retries = _retries()
    assert retries.next_wait(status=429, retry_after=37.0) == 37.0
    assert retries.attempts == 2


def test_retry_after_longer_than_the_time_left_gives_up_at_once() -> None:
    retries = _retries(max_wait=900.0, elapsed=880.0)  # about 20 s left
    with pytest.raises(GiveUpError) as raised:
        retries.next_wait(status=429, retry_after=120.0)
    message = str(raised.value)
    assert message.startswith("after 1 attempts: the server asks to wait 120 s (Retry-After)")
    left = re.search(r"retry_max_wait_seconds leaves (\d+) s", message)
    assert left is not None
    assert 18 <= int(left.group(1)) <= 20
    assert retries.attempts == 1  # nothing counted: no attempt follows


def test_retry_after_when_no_time_is_left_says_zero_left() -> None:
    retries = _retries(max_wait=10.0, elapsed=50.0)
    with pytest.raises(GiveUpError, match=r"leaves 0 s"):
        retries.next_wait(status=429, retry_after=5.0)


def test_time_used_up_gives_up_without_retry_after() -> None:
    retries = _retries(max_wait=30.0, elapsed=45.0)
    with pytest.raises(GiveUpError, match=r"^after 1 attempts in 45 s \(retry_max_wait_seconds\)$"):
        retries.next_wait(status=503)


def test_backoff_never_waits_past_the_time_left() -> None:
    retries = _retries(max_wait=100.0, elapsed=99.8)  # 0.2 s left, backoff would be 0.5-1 s
    wait = retries.next_wait(status=503)
    assert 0.0 < wait <= 0.2


def test_backoff_grows_with_the_attempts() -> None:
    retries = _retries(max_attempts=8)
    waits = [retries.next_wait(status=503) for _ in range(4)]
    for number, wait in enumerate(waits, start=1):
        full = 2.0 ** (number - 1)
        assert full / 2 <= wait <= full


def test_now_after_401_waits_nothing_but_counts_the_attempt() -> None:
    retries = _retries()
    assert retries.next_wait(status=401, now=True) == 0.0
    assert retries.attempts == 2


def test_now_wins_over_retry_after() -> None:
    assert _retries().next_wait(status=401, retry_after=30.0, now=True) == 0.0


# --------------------------------------------------------------------------------------------
# describe_wait
# --------------------------------------------------------------------------------------------


def test_describe_wait_for_retry_after() -> None:
    retries = _retries(max_attempts=8)
    wait = retries.next_wait(status=429, retry_after=2.0)
    text = retries.describe_wait(wait, retry_after=True)
    assert re.fullmatch(
        r"waiting 2\.0 s \(as Retry-After asks\) until \d\d:\d\d:\d\d UTC, then attempt 2 of 8",
        text,
    )


def test_describe_wait_when_backing_off() -> None:
    retries = _retries(max_attempts=5)
    retries.next_wait(status=503, retry_after=0.0)
    text = retries.describe_wait(1.25, retry_after=False)
    assert re.fullmatch(
        r"waiting 1\.2 s \(backing off\) until \d\d:\d\d:\d\d UTC, then attempt 2 of 5", text
    )


def test_describe_wait_until_is_the_wall_clock_end() -> None:
    retries = _retries()
    before = datetime.now(UTC)
    text = retries.describe_wait(3600.0, retry_after=True)
    found = re.search(r"until (\d\d:\d\d:\d\d) UTC", text)
    assert found is not None
    expected = {
        (before + timedelta(seconds=3600 + delta)).strftime("%H:%M:%S") for delta in (0, 1, 2)
    }
    assert found.group(1) in expected


def test_describe_wait_of_zero_is_retrying_now() -> None:
    retries = _retries(max_attempts=3)
    retries.next_wait(status=401, now=True)
    assert retries.describe_wait(0.0, retry_after=False) == "retrying now (attempt 2 of 3)"
