"""The alert sink port: where an alert goes (Slack, a PagerDuty-style webhook), and what one delivery
attempt can come to.

A sink answers each attempt with data, never an exception: ``Delivered``; ``RetryLater`` (down,
timing out, 5xx, 429, with the ``Retry-After`` it asked for); ``Rejected`` (a 4xx other than 429: the
request itself is wrong, and sending it again would not help). Connectors implement the port
(connectors/sinks/alert_sinks.py); streams/alerts/delivery.py retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from streams.core.alert import Alert


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
