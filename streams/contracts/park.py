"""Parking: an event whose next model call would pass a hard budget limit waits in ``<agent>.parked``.

The parked record is the input record as it first arrived (same key, value and headers, same
partition number) plus the ``keel.retry.*`` headers that running it again needs (where it first
arrived, its attempts so far, its next pass) and ``keel.park.*`` headers saying which budget stopped it
and until when. The worker reads each parking topic's partitions in order (streams/kafka/intake.py), holding
each record until the budget has room again (the period ended, or `keel budget raise`), then runs the
event again in the retry tier it was parked from.

Pure: building and parsing headers only.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.contracts.retry import Arrival, waiting_arrival, waiting_headers
from streams.core.domain import Headers, Parked, SourceRecord

PREFIX = "keel.park."
H_SCOPE = PREFIX + "scope"  # the budget scope that refused the call: agent:<name> or tenant:<tenant>
H_PERIOD = PREFIX + "period"  # its period whose limit was reached: day:YYYY-MM-DD or month:YYYY-MM
H_UNTIL = PREFIX + "until"  # when that period ends (ms since the epoch)
H_TIER = PREFIX + "tier"  # the retry tier the event was parked from, and runs in again
H_MESSAGE = PREFIX + "message"  # why, for people


@dataclass(frozen=True, slots=True)
class Parking:
    scope: str
    period: str
    until_ms: int


def park_headers(parked: Parked) -> Headers:
    own = (
        (H_SCOPE, parked.scope.encode()),
        (H_PERIOD, parked.period.encode()),
        (H_UNTIL, str(parked.until_ms).encode()),
        (H_TIER, str(parked.trace.tier).encode()),
        (H_MESSAGE, parked.failure.message[:1000].encode()),
    )
    return (*parked.trace.source.headers, *own, *waiting_headers(parked.trace))


def parked_arrival(delivered: SourceRecord) -> tuple[Arrival, Parking | None]:
    """The event to run again, and what it waits for (None: the ``keel.park.*`` headers are unreadable,
    say for a record written by hand; it is run at once)."""
    headers = dict(delivered.headers)
    try:
        tier = int(headers.get(H_TIER) or b"0")
        parking = Parking(
            (headers[H_SCOPE] or b"").decode(), (headers[H_PERIOD] or b"").decode(), int(headers[H_UNTIL] or b"0")
        )
    except (KeyError, ValueError):
        return waiting_arrival(delivered, tier=0, due_ms=0), None
    return waiting_arrival(delivered, tier=tier, due_ms=0), parking
