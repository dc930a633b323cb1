"""Riding out a lost dependency: which errors mean "down for now", and waiting them out visibly.

A surveillance service must not stop because PostgreSQL restarted or Kafka moved a leader. What
it was doing is retried with exponential backoff (tenacity) for as long as the outage lasts; the
outage shows as `vigil_dependency_up{component, dependency} == 0`, one log line when it starts and
one when it ends, and the `VigilDependencyDown` alert rule. Errors that are not outages (a bug, a
row the database refuses) are raised at once, so they are handled where they belong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from sqlalchemy import exc as sa
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from vigil_runtime.observability import DEPENDENCY_UP, OUTAGE_RETRIES

log = structlog.get_logger("outages")
T = TypeVar("T")

# asyncpg's own words for "the server is gone, restarting or refusing connections for now".
_ASYNCPG_TRANSIENT = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,  # admin_shutdown, crash_shutdown: a restart under way
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)


class Unavailable(ConnectionError):
    """A dependency (PostgreSQL, Kafka) cannot be reached now: a request may be retried (the API
    answers 503), a process waits it out."""


def is_outage(error: BaseException) -> bool:
    """True for errors that say a dependency is unreachable, not that the request was wrong."""
    if isinstance(error, sa.DBAPIError):
        if error.connection_invalidated or isinstance(error, (sa.OperationalError, sa.InterfaceError)):
            return True
        error = error.orig or error
        cause = getattr(error, "__cause__", None)
        if cause is not None and is_outage(cause):
            return True
    if isinstance(error, sa.TimeoutError):  # no connection free in the pool in time
        return True
    if isinstance(error, KafkaError):  # aiokafka says which of its errors pass (no broker, no leader)
        return bool(error.retriable)
    return isinstance(error, (OSError, asyncio.TimeoutError, *_ASYNCPG_TRANSIENT))


async def waiting_out(
    component: str,
    dependency: str,
    call: Callable[[], Awaitable[T]],
    *,
    max_wait: float = 10.0,
    give_up: Callable[[], bool] = lambda: False,
) -> T:
    """`call()`, retried through an outage of `dependency` until it succeeds (or `give_up()`)."""
    gauge = DEPENDENCY_UP.labels(component, dependency)
    started: list[float] = []

    def before_sleep(state: RetryCallState) -> None:
        OUTAGE_RETRIES.labels(component, dependency).inc()
        if not started:
            started.append(time.monotonic())
            gauge.set(0)
            error = state.outcome.exception() if state.outcome else None
            log.warning(f"{component}.{dependency}_unreachable", error=type(error).__name__, detail=str(error)[:200])

    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda e: is_outage(e) and not give_up()),
        wait=wait_exponential_jitter(initial=0.2, max=max_wait),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def attempt() -> T:  # a coroutine function: tenacity runs a plain callable without awaiting it
        return await call()

    result: T = await retrying(attempt)
    gauge.set(1)
    if started:
        log.warning(f"{component}.{dependency}_back", down_seconds=round(time.monotonic() - started[0], 1))
    return result
