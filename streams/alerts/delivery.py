"""Sending an alert to its sinks: the ``AlertSink`` port, what a delivery attempt can come to, and
retrying with exponential backoff until each sink has taken the alert or refused it for good.

A sink answers each attempt with data, never an exception: ``Delivered``; ``RetryLater`` (down,
timing out, 5xx, 429, with the ``Retry-After`` it asked for); ``Rejected`` (a 4xx other than 429: the
request itself is wrong, and sending it again would not help). Connectors implement the port
(connectors/sinks/alert_sinks.py); the relay (streams/apps/relay/alert_relay.py) decides nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from streams.alerts.records import Alert

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Delivered:
    pass


@dataclass(frozen=True, slots=True)
class RetryLater:
    reason: str
    retry_after_s: float | None = None  # what the sink asked for (429, 503 with Retry-After)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


DeliveryResult = Delivered | RetryLater | Rejected
Final = Delivered | Rejected


class AlertSink(Protocol):
    name: str  # for logs; never the URL, which may hold a secret

    async def deliver(self, alert: Alert) -> DeliveryResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float
    max_s: float
    longest_retry_after_s: float = 3600.0  # a Retry-After is honoured up to this

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float:
        """The wait after failed attempt number ``attempt`` (1, 2, ...)."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.longest_retry_after_s)
        return min(self.base_s * 2.0 ** (attempt - 1), self.max_s)


Sleep = Callable[[float], Awaitable[None]]


async def deliver(sink: AlertSink, alert: Alert, backoff: Backoff, sleep: Sleep) -> Final:
    """Attempt after attempt until the sink takes the alert or rejects it: a sink that is down delays
    the alert, it does not lose it."""
    attempt = 0
    while True:
        attempt += 1
        result = await sink.deliver(alert)
        if not isinstance(result, RetryLater):
            return result
        delay_s = backoff.delay_s(attempt, result.retry_after_s)
        log.warning(
            "alert %s (%s) to %s: %s; attempt %d, next in %.1f s",
            alert.dedup_key,
            alert.status,
            sink.name,
            result.reason,
            attempt,
            delay_s,
        )
        await sleep(delay_s)


async def deliver_everywhere(sinks: Sequence[AlertSink], alert: Alert, backoff: Backoff, sleep: Sleep) -> list[Final]:
    """Every sink at once (one that is down does not hold up the others for this alert); returns when
    every sink has taken the alert or refused it for good."""
    results = await asyncio.gather(*(deliver(sink, alert, backoff, sleep) for sink in sinks))
    for sink, result in zip(sinks, results, strict=True):
        if isinstance(result, Rejected):
            log.error(
                "alert %s (%s) was REFUSED by %s and will not be sent there again: %s",
                alert.dedup_key,
                alert.status,
                sink.name,
                result.reason,
            )
    return list(results)
