"""A dead letter's value and headers, within a size bound whatever the input carried.

A dead letter keeps the original record: its key, value and headers, in the value (``original``), and
the original's own headers once more on the record itself, as Kafka Connect and Spring Kafka do. An
input near the size limit with many large headers would make that record larger than any topic takes,
and a produce that can never succeed would hold its partition for ever. So the record is built whole
when it fits within ``max_bytes`` and cut when it does not: copied headers are kept in order while they
fit in a share of the bound, the key and message are shortened, and the original value keeps what room
is left. ``original_truncated`` (in the value and the ``keel.dlq.original.truncated`` header) says so; the
whole record is still at its original position.

Pure: plain values in, bytes out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from streams.agent.definition import Agent
from streams.core.domain import DeadLetter, Headers

DLQ_HEADER_PREFIX = "keel.dlq."
H_TRUNCATED = DLQ_HEADER_PREFIX + "original.truncated"
MAX_MESSAGE_CHARS = 4000  # the dead letter's message; its header copy keeps 1,000
_MARGIN_BYTES = 1024  # the record's own framing, and the Avro lengths that grow as a field is cut

Encode = Callable[[dict[str, Any]], bytes]


@dataclasses.dataclass(frozen=True, slots=True)
class Bound:
    """A dead letter's record, as sent: its value's bytes and its headers."""

    value: bytes
    headers: Headers


def record_size(key: bytes | None, value: bytes, headers: Headers) -> int:
    """What a record's key, value and headers take on the wire, framing aside."""
    carried = sum(len(name.encode()) + len(header or b"") for name, header in headers)
    return len(key or b"") + len(value) + carried


def bounded(value: dict[str, Any], headers: Headers, *, key: bytes, max_bytes: int, encode: Encode) -> Bound:
    """``value`` (as ``dead_letter_value`` built it) encoded, with ``headers``, cut to ``max_bytes``."""
    encoded = encode(value)
    if record_size(key, encoded, headers) <= max_bytes:
        return Bound(encoded, headers)
    original = dict(value["original"])
    original["key"] = _cut_bytes(original["key"], max_bytes // 16)
    original["headers"] = _kept(original["headers"], max_bytes // 8)
    own = tuple((name, v) for name, v in headers if name.startswith("keel."))
    copied = _kept_pairs(tuple(h for h in headers if not h[0].startswith("keel.")), max_bytes // 16)
    cut_headers = (*copied, *own, (H_TRUNCATED, b"true"))
    cut = dict(value, message=value["message"][:MAX_MESSAGE_CHARS], original_truncated=True)
    cut["original"] = dict(original, value=b"")
    room = max_bytes - record_size(key, encode(cut), cut_headers) - _MARGIN_BYTES
    cut["original"]["value"] = original["value"][: max(room, 0)]
    return Bound(encode(cut), cut_headers)


def _cut_bytes(data: bytes | None, limit: int) -> bytes | None:
    return data if data is None else data[:limit]


def _kept(headers: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The value's copy of the original headers, in order, while they fit in ``limit`` bytes."""
    kept, used = [], 0
    for header in headers:
        used += len(header["key"].encode()) + len(header["value"] or b"")
        if used > limit:
            break
        kept.append(header)
    return kept


def _kept_pairs(headers: Headers, limit: int) -> Headers:
    kept = _kept([{"key": name, "value": value} for name, value in headers], limit)
    return tuple((h["key"], h["value"]) for h in kept)


def dead_letter_value(dead: DeadLetter, agent: Agent, now_ms: int) -> dict[str, Any]:
    trace, source = dead.trace, dead.trace.source
    return {
        "event_id": trace.event_id,
        "agent": agent.name,
        "config_version": agent.config_version,
        "stage": dead.failure.stage.value,
        "error_class": dead.failure.error_class,
        "reason": dead.failure.reason,
        "message": dead.failure.message,
        "attempts": len(trace.attempts),
        "failed_at": now_ms,
        "trace_id": trace.event.trace_id if trace.event else None,
        "pass_number": trace.pass_number,
        "original_truncated": False,
        "original": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "timestamp": source.timestamp_ms,
            "key": source.key,
            "value": source.value,
            "headers": [{"key": k, "value": v} for k, v in source.headers],
        },
    }


def dead_letter_headers(dead: DeadLetter, common: Headers) -> Headers:
    """The original's own headers (not Keel's), ``common`` (Keel's, with the outcome), then the dead
    letter's facts."""
    source, failure = dead.trace.source, dead.failure
    facts = {
        "original.topic": source.topic,
        "original.partition": str(source.partition),
        "original.offset": str(source.offset),
        "original.timestamp": "" if source.timestamp_ms is None else str(source.timestamp_ms),
        "stage": failure.stage.value,
        "error.class": failure.error_class,
        "error.reason": failure.reason,
        "error.message": failure.message[:1000],
        "attempts": str(len(dead.trace.attempts)),
        "retry.tier": str(dead.trace.tier),
        "pass": str(dead.trace.pass_number),
    }
    original = tuple((k, v) for k, v in source.headers if not k.startswith("keel."))
    own = tuple((DLQ_HEADER_PREFIX + name, value.encode()) for name, value in facts.items())
    return (*original, *common, *own)
