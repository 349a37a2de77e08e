"""``keel.alerts`` read back: the open incidents an evaluator takes over, and `keel alerts list`."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from aiokafka import TopicPartition

from streams.alerts.records import decode_alert
from streams.contracts.topics import ALERTS
from streams.core.alert import FIRING, Alert
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError
from streams.core.settings import Settings
from streams.kafka.consumers import read_to_end

log = logging.getLogger(__name__)


async def read_alerts(settings: Settings, catalogue: Catalogue) -> list[Alert]:
    """Every alert the topic still holds (it keeps seven days), in the order they were decided."""
    topic = settings.topic(ALERTS)
    alerts: list[Alert] = []
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    async for message in read_to_end(settings.bootstrap_servers, tps):
        try:
            alerts.append(decode_alert(catalogue, message.value or b""))
        except DecodeError as exc:  # not an alert: nothing to take over or show
            log.warning("%s/%s/%s is not an alert: %s", topic, message.partition, message.offset, exc)
    return sorted(alerts, key=lambda alert: alert.at_ms)


def open_incidents(alerts: Iterable[Alert]) -> list[Alert]:
    """The firing alerts not followed by a resolved one with the same dedup key."""
    latest: dict[str, Alert] = {}
    for alert in alerts:
        latest[alert.dedup_key] = alert
    return [alert for alert in latest.values() if alert.status == FIRING]


def describe(alert: Alert) -> str:
    at = datetime.fromtimestamp(alert.at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    values = f"{_value(alert.observed, alert.unit)} / {_value(alert.threshold, alert.unit)}"
    return f"{at}  {alert.status:<8} {alert.severity:<8} {alert.dedup_key:<48} {values:<24} {alert.summary}"


def _value(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.0%}"
    if unit == "ms":
        return f"{value / 1000:.1f}s"
    if unit in ("usd", "usd_per_hour"):
        return f"{value:.2f}{'/h' if unit == 'usd_per_hour' else ''} USD"
    return f"{value:g}"
