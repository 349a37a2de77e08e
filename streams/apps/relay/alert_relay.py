"""`keel alerts relay`: ``keel.alerts`` to the configured sinks, in order, nothing lost.

The relay reads in its own consumer group and commits an alert's offset only once every sink has
taken it or refused it for good (streams/alerts/delivery.py), so a sink that is down holds the alerts
behind it until it is back, and a relay that is stopped or crashes sends the uncommitted ones again
when it (or another relay of the group) starts: delivery is at least once, and the webhook's
``dedup_key`` lets PagerDuty fold repeats. A relay waits for its sinks as long as it takes, so its
poll interval allowance is a day rather than aiokafka's five minutes. A new group starts at the
oldest alert the topic keeps.

A record that is not an alert is passed over (logged once per partition, counted in
``keel_records_skipped_total``) and committed like a delivered one. A transient Kafka error is read
through; any other error ends the relay with exit code 70, for its supervisor to start it again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata

from streams.alerts.delivery import Backoff, Sleep, deliver_everywhere
from streams.alerts.records import decode_alert
from streams.apps.faust_app import exit_for_restart
from streams.contracts.topics import ALERTS, alert_relay_group
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError
from streams.core.ports.alert_sink import AlertSink
from streams.core.settings import Settings
from streams.kafka.consumers import PATIENT_POLL_MS, group_consumer, until_read
from streams.kafka.skipped import SkippedRecords

log = logging.getLogger(__name__)
READER = "alert-relay"


async def run_relay(settings: Settings, catalogue: Catalogue, sinks: Sequence[AlertSink]) -> None:
    """`keel alerts relay`: until SIGTERM or SIGINT, which stop it between two deliveries or during a wait."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await relay(settings, catalogue, sinks, asyncio.sleep)
    except asyncio.CancelledError:
        log.warning("alert relay stopped")
    except Exception as exc:  # crash-only: its supervisor starts it again, and it sends from the last commit
        exit_for_restart("the alert relay failed", exc)


async def relay(
    settings: Settings,
    catalogue: Catalogue,
    sinks: Sequence[AlertSink],
    sleep: Sleep,
    *,
    skipped: SkippedRecords | None = None,
    consumer: AIOKafkaConsumer | None = None,
) -> None:
    """Run until cancelled. ``skipped``: where records that are not alerts are counted; ``consumer``:
    one to use instead of the group's own (tests)."""
    backoff = Backoff(settings.alert_retry_base_s, settings.alert_retry_max_s)
    skipped = skipped or SkippedRecords()
    consumer = consumer or group_consumer(settings, alert_relay_group(settings), max_poll_interval_ms=PATIENT_POLL_MS)
    consumer.subscribe([settings.topic(ALERTS)])
    await consumer.start()
    log.warning("alert relay: %s -> %s", settings.topic(ALERTS), ", ".join(s.name for s in sinks) or "no sinks")
    try:
        while True:
            batch = await until_read(lambda: consumer.getmany(timeout_ms=1000, max_records=100), what="alerts")
            for tp, messages in batch.items():
                for message in messages:
                    if tp not in consumer.assignment():  # revoked meanwhile: its next owner sends the rest
                        break
                    await _relay_one(catalogue, sinks, message, backoff, sleep, skipped=skipped)
                    await _commit(consumer, tp, message.offset + 1)
    finally:
        await consumer.stop()
        for sink in sinks:
            await sink.aclose()


async def _relay_one(
    catalogue: Catalogue,
    sinks: Sequence[AlertSink],
    message: Any,
    backoff: Backoff,
    sleep: Sleep,
    *,
    skipped: SkippedRecords,
) -> None:
    try:
        alert = decode_alert(catalogue, message.value or b"")
    except DecodeError as exc:  # not an alert: there is nothing to send
        skipped.skip(READER, message, exc)
        return
    await deliver_everywhere(sinks, alert, backoff, sleep)


async def _commit(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
    try:
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    except (CommitFailedError, IllegalStateError) as exc:  # the partition moved to another relay meanwhile
        log.warning("alert relay: %s moved to another relay (%r); it sends from its last commit", tp, exc)
