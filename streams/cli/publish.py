"""Publishing request events: the business system's side of the contract (samples, demo, tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from streams.contracts.headers import H_EVENT_ID
from streams.contracts.out_record import OutRecord
from streams.core.catalogue import Catalogue
from streams.core.domain import RequestEvent
from streams.core.kafka_client import ClientConfig
from streams.kafka.producer import RecordProducer
from streams.pipeline.decode import encode_request


def load_samples(path: Path) -> list[dict[str, Any]]:
    """Sample events, one JSON envelope (without event_id) per line."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def to_request(sample: dict[str, Any], *, event_id: str | None = None) -> RequestEvent:
    occurred = datetime.fromisoformat(sample["occurred_at"].replace("Z", "+00:00"))
    return RequestEvent(
        event_id=event_id or str(uuid.uuid4()),
        occurred_at_ms=int(occurred.timestamp() * 1000),
        tenant=sample["tenant"],
        source_system=sample["source_system"],
        business_key=sample["business_key"],
        payload=sample["payload"],
        payload_json=orjson.dumps(sample["payload"]).decode(),
        trace_id=sample.get("trace_id"),
    )


def take(samples: list[dict[str, Any]], count: int) -> list[RequestEvent]:
    """``count`` events cycling through the samples, each with a fresh event id."""
    return [to_request(samples[i % len(samples)]) for i in range(count)]


async def publish(kafka: ClientConfig, topic: str, catalogue: Catalogue, events: Iterable[RequestEvent]) -> list[str]:
    """Encode and produce the events keyed by business key; return their event ids once all are acked."""
    batch = list(events)
    records = [
        OutRecord(topic, e.business_key.encode(), encode_request(catalogue, e), ((H_EVENT_ID, e.event_id.encode()),))
        for e in batch
    ]
    async with RecordProducer(kafka) as producer:
        await producer.send_all(records)
    return [e.event_id for e in batch]


async def publish_raw(
    kafka: ClientConfig, topic: str, values: Iterable[tuple[bytes, bytes]]
) -> list[tuple[str, int, int]]:
    """Produce raw (key, value) pairs as they are, e.g. bad input; return each one's (topic, partition, offset)."""
    async with RecordProducer(kafka) as producer:
        return await producer.send_all(OutRecord(topic, key, value, ()) for key, value in values)
