"""Retry tiers: an event whose transient failure outlasted the in-line retries waits in a tier topic.

Tier ``n`` of an agent is the topic ``<agent>.retry.<n>`` with the delay ``reliability.retry_delays_s[n-1]``.
A tier record is the input record as it first arrived (same key, value and headers, same partition
number, so the outcome store entry of the event stays in one partition) plus ``keel.retry.*`` headers
saying where it first arrived and what was tried so far. The worker reads each tier topic's partitions
in order (streams/kafka/intake.py): a record waits until it is due (its timestamp plus the tier's delay), then
the event runs again. While it waits, the input partition goes on: a slow retry never holds it.

Pure: parsing and building headers only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import orjson
from pydantic import TypeAdapter

from streams.core.domain import Attempt, Headers, RetryLater, SourceRecord, Trace

PREFIX = "keel.retry."
H_TIER = PREFIX + "tier"  # the tier this record waits in
H_REASON = PREFIX + "reason"  # the reason code of the failure that sent it here
H_ERROR = PREFIX + "error"  # that failure's message
H_ORIGIN = PREFIX + "origin"  # where the event first arrived: topic/partition/offset
H_ORIGIN_TIMESTAMP = PREFIX + "origin.timestamp"  # its timestamp there (ms), empty when it had none
H_ATTEMPTS = PREFIX + "attempts"  # JSON list of the attempts so far, in the audit's attempt_log shape
WAITING_PREFIXES = (PREFIX, "keel.park.")  # headers of a waiting record, not of the event
H_PASS = PREFIX + "pass"  # the event's pass this record is for: 1 + the retry tiers and parkings before it


@dataclass(frozen=True, slots=True)
class Arrival:
    """A record as the worker received it, read back into the event's first arrival."""

    source: SourceRecord  # the record as it first arrived on the input topic
    tier: int  # 0: from the input topic
    earlier: tuple[Attempt, ...]  # attempts made in earlier tiers
    due_ms: int  # not to be run before this time (0: at once)
    pass_number: int = 0  # which pass of the event this is (see streams/kafka/outcome_store.py)


def arrival(delivered: SourceRecord, *, tier: int, delay_s: float) -> Arrival:
    """``tier`` and ``delay_s`` come from the topic the record was read from, never from its headers.

    A tier record with unreadable ``keel.retry.*`` headers (written by hand, say) is run as it is, as
    if it had first arrived where it was read."""
    if tier == 0:
        return Arrival(delivered, 0, (), 0)
    due_ms = (delivered.timestamp_ms or 0) + int(delay_s * 1000)
    return waiting_arrival(delivered, tier=tier, due_ms=due_ms)


def waiting_arrival(delivered: SourceRecord, *, tier: int, due_ms: int) -> Arrival:
    """A record that waited (in a retry tier or parked), read back into the event's first arrival."""
    try:
        raw_pass = dict(delivered.headers).get(H_PASS)
        pass_number = int(raw_pass) if raw_pass else tier  # written before parking existed: one pass a tier
        return Arrival(_origin(delivered), tier, _attempts(delivered.headers), due_ms, pass_number)
    except (ValueError, TypeError, KeyError):
        return Arrival(delivered, tier, (), due_ms, tier)


def tier_headers(later: RetryLater) -> Headers:
    """The headers of the tier record: the original ones, then the ``keel.retry.*`` ones."""
    own = [(H_TIER, str(later.tier).encode()), *failure_headers(later.failure.reason, later.failure.message)]
    return (*later.trace.source.headers, *own, *waiting_headers(later.trace))


def failure_headers(reason: str, message: str) -> Headers:
    return ((H_REASON, reason.encode()), (H_ERROR, message[:1000].encode()))


def waiting_headers(trace: Trace) -> Headers:
    """Where the event first arrived, its attempts so far and its next pass: what running it again needs."""
    source = trace.source
    return (
        (H_ORIGIN, source.position.encode()),
        (H_ORIGIN_TIMESTAMP, b"" if source.timestamp_ms is None else str(source.timestamp_ms).encode()),
        (H_ATTEMPTS, orjson.dumps([dataclasses.asdict(a) for a in trace.attempts])),
        (H_PASS, str(trace.pass_number + 1).encode()),
    )


def _origin(delivered: SourceRecord) -> SourceRecord:
    headers = dict(delivered.headers)
    topic, partition, offset = (headers[H_ORIGIN] or b"").decode().rsplit("/", 2)
    timestamp = (headers.get(H_ORIGIN_TIMESTAMP) or b"").decode()
    if int(partition) != delivered.partition:  # Keel keeps the number: the event's store entry is there
        raise ValueError(f"origin partition {partition} is not the record's {delivered.partition}")
    return dataclasses.replace(
        delivered,
        topic=topic,
        partition=int(partition),
        offset=int(offset),
        timestamp_ms=int(timestamp) if timestamp else None,
        headers=tuple((k, v) for k, v in delivered.headers if not k.startswith(WAITING_PREFIXES)),
    )


_ATTEMPTS = TypeAdapter(tuple[Attempt, ...])


def _attempts(headers: Headers) -> tuple[Attempt, ...]:
    """Checked field by field: a tier record's attempts become usage and audit records again. Raises
    ``ValueError`` (pydantic's ``ValidationError``) for a header Keel did not write."""
    raw = dict(headers).get(H_ATTEMPTS)
    return _ATTEMPTS.validate_json(raw) if raw else ()
