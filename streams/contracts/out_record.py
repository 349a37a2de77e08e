"""``OutRecord``: one record Keel writes, as plain values (topic, key, value, headers), before a producer
sends it (streams/kafka/producer.py)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.core.domain import Headers


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: bytes | None  # None only when re-publishing an input record that had no key
    value: bytes
    headers: Headers
    partition: int | None = None  # None: by key
    timestamp_ms: int | None = None  # None: when it is sent
