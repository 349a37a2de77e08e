"""Decode step: raw Kafka value → ``RequestEvent``, or a ``DecodeError`` that says what is wrong."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.domain import RequestEvent, SourceRecord, undecodable_id
from streams.core.errors import DecodeError, EventTooLarge, FieldTooLong, InvalidPayload, MissingField
from streams.core.ports.clock import Clock

REQUEST_SUBJECT = "keel.request-value"
_REQUIRED_TEXT = ("event_id", "tenant", "source_system", "business_key")
MAX_ID_CHARS = 512  # event and trace ids go into every record's key and headers


def decode_request(catalogue: Catalogue, data: bytes, *, max_event_bytes: int) -> RequestEvent:
    if len(data) > max_event_bytes:
        raise EventTooLarge(f"event is {len(data):,} bytes; this worker accepts at most {max_event_bytes:,}")
    record = wire.decode(catalogue, data, subject=REQUEST_SUBJECT)
    empty = [name for name in _REQUIRED_TEXT if not str(record.get(name) or "").strip()]
    if empty:
        raise MissingField(f"required field(s) empty: {', '.join(empty)}")
    long_ids = [name for name in ("event_id", "trace_id") if len(record.get(name) or "") > MAX_ID_CHARS]
    if long_ids:
        raise FieldTooLong(f"{' and '.join(long_ids)} longer than {MAX_ID_CHARS} characters")
    payload_json = record["payload"]
    try:
        payload = orjson.loads(payload_json)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise InvalidPayload(f"payload must be a JSON object, got {type(payload).__name__}")
    return RequestEvent(
        event_id=record["event_id"],
        occurred_at_ms=wire.epoch_ms(record["occurred_at"]),
        tenant=record["tenant"],
        source_system=record["source_system"],
        business_key=record["business_key"],
        payload=payload,
        payload_json=payload_json,
        trace_id=record.get("trace_id"),
    )


@dataclass(frozen=True, slots=True)
class Decoded:
    """An input record decoded once: the worker keys the outcome store by its id, the pipeline runs it."""

    event_id: str
    event: RequestEvent | None
    error: DecodeError | None  # why the record is not a request event
    ms: float


def read_source(catalogue: Catalogue, source: SourceRecord, *, max_event_bytes: int, clock: Clock) -> Decoded:
    """The record's event, or the reason it has none; its id is stable either way."""
    started = clock.monotonic()
    try:
        event = decode_request(catalogue, source.value, max_event_bytes=max_event_bytes)
    except DecodeError as exc:
        return Decoded(undecodable_id(source), None, exc, (clock.monotonic() - started) * 1000)
    return Decoded(event.event_id, event, None, (clock.monotonic() - started) * 1000)


def encode_request(catalogue: Catalogue, event: RequestEvent) -> bytes:
    """The publisher's side of the same contract (samples, demo, tests)."""
    return wire.encode(
        catalogue.by_subject(REQUEST_SUBJECT),
        {
            "event_id": event.event_id,
            "occurred_at": event.occurred_at_ms,
            "tenant": event.tenant,
            "source_system": event.source_system,
            "business_key": event.business_key,
            "payload": event.payload_json,
            "trace_id": event.trace_id,
        },
    )


def refused(source: SourceRecord, error: DecodeError, *, ms: float) -> Decoded:
    """A record the worker refuses whatever it decodes to (forged control headers, a reused event id):
    a decode failure keyed by its position, so it never touches the entry of the event it names."""
    return Decoded(undecodable_id(source), None, error, ms)
