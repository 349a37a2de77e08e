"""What `keel eval` reads (streams/eval/inputs.py): the audit trail, and an agent's review items with the
decisions on them. Each topic is read from its beginning to the end it has when the read starts; a
record that is not Keel's is passed over and counted (streams/kafka/skipped.py)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition

from streams.contracts.topics import AUDIT, REVIEW_DECISIONS
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError
from streams.core.kafka_client import ClientConfig
from streams.core.review_item import Decision, ReviewItem
from streams.core.settings import Settings
from streams.kafka.consumers import read_to_end
from streams.kafka.skipped import SkippedRecords
from streams.review.records import decode_decision, decode_item

READER = "eval-inputs"
AUDIT_SUBJECT = "keel.audit-value"


def _partitions(topic: str, settings: Settings) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(settings.partitions)]


async def read_audit(
    kafka: ClientConfig, catalogue: Catalogue, settings: Settings, *, since_ms: int, skipped: SkippedRecords
) -> list[tuple[int, dict[str, Any]]]:
    """Every audit record written since ``since_ms`` (by its timestamp), decoded: (timestamp, value)."""
    records: list[tuple[int, dict[str, Any]]] = []
    async for message in read_to_end(kafka, _partitions(settings.topic(AUDIT), settings)):
        if message.timestamp < since_ms:
            continue
        try:
            records.append((message.timestamp, wire.decode(catalogue, message.value or b"", subject=AUDIT_SUBJECT)))
        except DecodeError as exc:
            skipped.skip(READER, message, exc)
    return sorted(records, key=lambda record: record[0])  # partitions interleaved in time


async def read_reviews(
    kafka: ClientConfig, catalogue: Catalogue, settings: Settings, *, review_topic: str, skipped: SkippedRecords
) -> tuple[list[ReviewItem], list[Decision]]:
    """The items of ``review_topic`` and every decision, each partition in log order (the decisions on
    one item share a partition: their order is the one the review service applies)."""
    items: list[ReviewItem] = []
    decisions: list[Decision] = []
    decisions_topic = settings.topic(REVIEW_DECISIONS)
    tps = _partitions(review_topic, settings) + _partitions(decisions_topic, settings)
    async for message in read_to_end(kafka, tps):
        try:
            if message.topic == decisions_topic:
                decisions.append(decode_decision(catalogue, message.value or b""))
            else:
                items.append(decode_item(catalogue, message.value or b"", tuple(message.headers or ())))
        except DecodeError as exc:
            skipped.skip(READER, message, exc)
    return items, decisions
