"""The transport's one retry loop, driven directly (no server): what is retried, when it gives
up, the fresh token after a 401, an unreachable host given up on once for the whole run."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest
import requests
import urllib3

from tap_microsoft365.graph.transport import Retry, StoppedError, Transport
from tap_microsoft365.retries import GiveUpError, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable

HOST = "graph.example:443"


class Tokens:
    def __init__(self) -> None:
        self.invalidated = 0

    @property
    def access_token(self) -> str:
        return "token"

    def invalidate_token(self) -> None:
        self.invalidated += 1


def answer(status: int, retry_after: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def transport(attempts: int = 8) -> Transport:
    made = Transport(
        graph_url=f"https://{HOST}", timeout=5, policy=RetryPolicy(max_attempts=attempts)
    )
    made.authenticator = Tokens()
    return made


class GaveUpError(Exception):
    def __init__(self, retry: Retry, reason: GiveUpError) -> None:
        super().__init__(f"{retry} {reason}")
        self.retry = retry


def failing(*failures: Retry, result: str = "ok") -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return result

    return calls, attempt


def test_throttling_is_retried_and_counts_toward_the_cap() -> None:
    calls, attempt = failing(*(Retry("429", response=answer(429, "0"), host=HOST),) * 5)
    with pytest.raises(GaveUpError, match=r"after 3 attempts \(retry_max_attempts\)"):
        transport(attempts=3).retrying(attempt, give_up=GaveUpError)
    assert len(calls) == 3

    calls, attempt = failing(Retry("429", response=answer(429, "0"), host=HOST))
    assert transport().retrying(attempt, give_up=GaveUpError) == "ok"
    assert len(calls) == 2


def test_a_retry_after_beyond_the_wait_cap_gives_up_at_once() -> None:
    made = Transport(
        graph_url=f"https://{HOST}",
        timeout=5,
        policy=RetryPolicy(max_attempts=8, max_wait_seconds=5),
    )
    calls, attempt = failing(Retry("429", response=answer(429, "30"), host=HOST))
    with pytest.raises(GaveUpError, match="asks to wait 30 s"):
        made.retrying(attempt, give_up=GaveUpError)
    assert len(calls) == 1


def test_a_401_gets_a_fresh_token_and_no_wait() -> None:
    made = transport()
    calls, attempt = failing(Retry("401", response=answer(401), host=HOST))
    assert made.retrying(attempt, give_up=GaveUpError) == "ok"
    assert len(calls) == 2
    assert made.authenticator.invalidated == 1  # type: ignore[union-attr]


def test_an_unreachable_host_is_given_up_on_once_for_every_later_call() -> None:
    refused = requests.exceptions.ConnectionError(
        urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    )
    made = transport()
    calls, attempt = failing(*(Retry("down", cause=refused, host=HOST),) * 5)
    with pytest.raises(GaveUpError, match="after 3 attempts"):
        made.retrying(attempt, give_up=GaveUpError)
    assert len(calls) == 3
    # Another call (say another report's worker) to the same host: no second round of retries.
    calls, attempt = failing(Retry("down", cause=refused, host=HOST))
    with pytest.raises(GaveUpError, match="after 3 attempts"):
        made.retrying(attempt, give_up=GaveUpError)
    assert len(calls) == 1


def test_a_stopping_run_ends_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    calls, attempt = failing(Retry("503", response=answer(503, "60"), host=HOST))
    with pytest.raises(StoppedError):
        transport().retrying(attempt, give_up=GaveUpError, stop=stop)
    assert len(calls) == 1
