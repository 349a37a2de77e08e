"""Completed events and their recorded outcome, in a changelog-backed faust table (one per agent).

A redelivered event (a crash before its offset was committed, a rebalance, a producer retry) finds its
outcome here and the worker re-emits the recorded records instead of calling the model again. The
entry is written to the changelog, and acknowledged by the broker, *before* the outcome records are
produced: whatever the crash point, the event's outcome is either recorded (and re-emitted as it was)
or not decided yet (and decided once). Entries live in the changelog partition of the input event, so a
redelivery (same key, same partition) is served by the worker that owns that partition; faust restores
the table from its changelog when partitions move.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from streams.domain import Headers
from streams.emit import OutRecord


def encode_records(records: list[OutRecord]) -> bytes:
    return orjson.dumps(
        [
            {
                "t": r.topic,
                "k": base64.b64encode(r.key).decode(),
                "v": base64.b64encode(r.value).decode(),
                "h": [[k, None if v is None else base64.b64encode(v).decode()] for k, v in r.headers],
            }
            for r in records
        ]
    )


def decode_records(blob: bytes) -> list[OutRecord]:
    return [
        OutRecord(
            topic=item["t"],
            key=base64.b64decode(item["k"]),
            value=base64.b64decode(item["v"]),
            headers=_headers(item["h"]),
        )
        for item in orjson.loads(blob)
    ]


def _headers(pairs: list[list[Any]]) -> Headers:
    return tuple((str(k), None if v is None else base64.b64decode(v)) for k, v in pairs)


class OutcomeStore:
    """A thin shell over a faust table: keys are event ids, values the outcome records to re-emit."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def recorded(self, event_id: str) -> list[OutRecord] | None:
        blob = self._table.data.get(event_id.encode())
        return None if blob is None else decode_records(blob)

    async def record(self, event_id: str, records: list[OutRecord], *, partition: int) -> None:
        """Write the entry to the changelog and wait for the broker's acknowledgement."""
        key, blob = event_id.encode(), encode_records(records)
        pending = await self._table.changelog_topic.send(key=key, value=blob, partition=partition)
        await pending
        self._table.data[key] = blob
