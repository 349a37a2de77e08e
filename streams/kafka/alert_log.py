"""``keel.alerts`` read back: the open incidents an evaluator takes over, and what `keel alerts list` shows
(streams/cli/alerts.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka import TopicPartition

from streams.alerts.records import decode_alert
from streams.contracts.topics import ALERTS
from streams.core.alert import FIRING, Alert
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError
from streams.core.settings import Settings
from streams.kafka.connection import client_config
from streams.kafka.consumers import read_to_end

log = logging.getLogger(__name__)


async def read_alerts(settings: Settings, catalogue: Catalogue) -> list[Alert]:
    """Every alert the topic still holds (it keeps seven days), in the order they were decided."""
    topic = settings.topic(ALERTS)
    alerts: list[Alert] = []
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    async for message in read_to_end(client_config(settings), tps):
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
