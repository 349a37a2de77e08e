"""Sending an alert to its sinks: retrying with exponential backoff until each sink has taken the alert
or refused it for good.

The port and its answers are streams/core/ports/alert_sink.py. Connectors implement the port
(connectors/sinks/alert_sinks.py); the relay (streams/apps/relay/alert_relay.py) decides nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streams.core.alert import Alert
from streams.core.ports.alert_sink import AlertSink, Final, Rejected, RetryLater

log = logging.getLogger(__name__)


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
