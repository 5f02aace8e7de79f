"""When a failed call is tried again, and how long the tap waits first.

One policy for every call the tap makes, to Graph and to Entra ID alike:

- Throttling (429) and transient faults (5xx, resets, timeouts, bodies cut off) are retried.
- A `Retry-After` header, in seconds or as an HTTP date, is waited out exactly: retrying earlier
  only prolongs throttling, because throttled calls count too
  (https://learn.microsoft.com/graph/throttling).
- Without one, waits grow exponentially with jitter (about 1, 2, 4 ... seconds, at most 60), so
  parallel runs do not retry in lockstep.
- `retry_max_attempts` caps the attempts of one call and `retry_max_wait_seconds` the time spent
  retrying it. A `Retry-After` longer than the time left ends the retries at once, with a message
  saying so, instead of sleeping and retrying too early. A 500 is usually a bug on Microsoft's
  side, not load, and a host that cannot be reached at all (refused, unknown name) is more often
  a wrong setting than a blip: each gets at most three attempts.
- Every retry is logged as one WARNING: what failed, the ids Microsoft support asks for, the wait
  and when it ends.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import requests
import urllib3

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_MAX_WAIT_SECONDS = 900.0
MAX_ATTEMPTS_ON_500 = 3
MAX_ATTEMPTS_UNREACHABLE = 3
# A 403 that names no missing permission (on a report call) has been a passing Graph outage:
# tried at most three times.
MAX_ATTEMPTS_ON_403 = 3
LONGEST_BACKOFF_SECONDS = 60.0


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """The `Retry-After` of a response in seconds (it may be a number or an HTTP date)."""
    if response is None:
        return None
    return parse_retry_after(response.headers.get("Retry-After"))


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After: 10` or `Retry-After: Thu, 26 Nov 2026 06:00:10 GMT`, as seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def is_unreachable(exc: BaseException) -> bool:
    """Whether a `requests` error means no connection was made (refused, unknown host, no
    route, the proxy unreachable), as opposed to one that broke or timed out once made."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ProxyError):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError) or not exc.args:
        return False
    reason = getattr(exc.args[0], "reason", exc.args[0])
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def backoff_seconds(retry: int) -> float:
    """The wait before retry number `retry` (1, 2, ...) when no Retry-After says otherwise:
    exponential, at most a minute, with jitter (half to all of it)."""
    return random.uniform(0.5, 1.0) * min(LONGEST_BACKOFF_SECONDS, 2.0 ** (retry - 1))


def clock(seconds_from_now: float) -> str:
    """When a wait ends, as wall-clock UTC for log lines."""
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).strftime("%H:%M:%S UTC")


@dataclass(frozen=True)
class RetryPolicy:
    """The caps set by `retry_max_attempts` and `retry_max_wait_seconds`."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        """The policy of the tap's settings (defaults where unset)."""
        return cls(
            max_attempts=max(1, int(config.get("retry_max_attempts") or DEFAULT_MAX_ATTEMPTS)),
            max_wait_seconds=float(
                config.get("retry_max_wait_seconds") or DEFAULT_MAX_WAIT_SECONDS
            ),
        )

    def start(self) -> Retries:
        """Retry bookkeeping for one call."""
        return Retries(self)


class GiveUpError(Exception):
    """No attempt is left for this call; the message says why (which cap)."""


@dataclass
class Retries:
    """How one call has fared so far; `next_wait` decides whether and when to try again."""

    policy: RetryPolicy
    attempts: int = 1
    errors_500: int = 0
    errors_403: int = 0
    unreachable: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        return time.monotonic() - self.started

    def next_wait(
        self,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        now: bool = False,
        unreachable: bool = False,
    ) -> float:
        """Seconds to wait before the next attempt, counting it; `GiveUpError` when none is left.

        `status` is the HTTP status that failed (None: no answer at all), `retry_after` the
        server's Retry-After in seconds, `now` asks for no wait (a new token after a 401),
        `unreachable` says no connection could be made.
        """
        if status == 500:
            self.errors_500 += 1
            if self.errors_500 >= MAX_ATTEMPTS_ON_500:
                msg = f"after {self.attempts} attempts (a 500 is tried at most 3 times)"
                raise GiveUpError(msg)
        if status == 403:
            self.errors_403 += 1
            if self.errors_403 >= MAX_ATTEMPTS_ON_403:
                msg = f"after {self.attempts} attempts"
                raise GiveUpError(msg)
        if unreachable:
            self.unreachable += 1
            if self.unreachable >= MAX_ATTEMPTS_UNREACHABLE:
                msg = f"after {self.attempts} attempts"
                raise GiveUpError(msg)
        if self.attempts >= self.policy.max_attempts:
            msg = f"after {self.attempts} attempts (retry_max_attempts)"
            raise GiveUpError(msg)
        left = self.policy.max_wait_seconds - self.elapsed
        if retry_after is not None and retry_after > left:
            msg = (
                f"after {self.attempts} attempts: the server asks to wait {retry_after:.0f} s "
                f"(Retry-After) and retry_max_wait_seconds leaves {max(0.0, left):.0f} s"
            )
            raise GiveUpError(msg)
        if left <= 0:
            msg = f"after {self.attempts} attempts in {self.elapsed:.0f} s (retry_max_wait_seconds)"
            raise GiveUpError(msg)
        if now:
            wait = 0.0
        elif retry_after is not None:
            wait = retry_after
        else:
            wait = min(backoff_seconds(self.attempts), left)
        self.attempts += 1
        return wait

    def describe_wait(self, wait: float, *, retry_after: bool) -> str:
        """'waiting 2.0 s (as Retry-After asks) until 06:00:12 UTC, then attempt 3 of 8'."""
        why = "as Retry-After asks" if retry_after else "backing off"
        if wait == 0:
            return f"retrying now (attempt {self.attempts} of {self.policy.max_attempts})"
        return (
            f"waiting {wait:.1f} s ({why}) until {clock(wait)}, then attempt {self.attempts} of "
            f"{self.policy.max_attempts}"
        )
