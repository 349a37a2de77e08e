"""Observations: the few facts of a usage or audit record that the alert rules look at.

The aggregator turns each ``keel.usage`` record (one model call) and ``keel.audit`` record (one event's
outcome) into an ``Observation`` and forwards it to the observation topic keyed by the scope a rule
evaluates (``agent=support_triage``, ``model=openai/gpt-4o-mini``). Usage and audit topics are keyed by
event id, so an agent's records are spread over every partition; keyed by scope, one aggregator sees
all of them. The encoding is compact and versioned (internal, not a public contract).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streams.alerts import Dimension

_VERSION = 1
Source = Literal["usage", "audit"]


@dataclass(frozen=True, slots=True)
class Observation:
    source: Source
    event_id: str
    at_ms: int  # the record's timestamp: a usage record's attempt start, an audit record's writing
    partition: int  # where the record was read (redeliveries are recognised by offset)
    offset: int
    agent: str
    model: str | None  # provider/model; an audit record of an event that never reached a model has none
    tenant: str
    outcome: str  # usage: ok or the failure's reason; audit: result, review or dead_letter
    reason: str | None  # audit: the reason of the error, if any
    latency_ms: float  # usage: the call; audit: from arrival to the outcome
    cost_usd: float | None  # usage: None when the model has no price; audit: None

    @property
    def unpriced(self) -> bool:
        return self.source == "usage" and self.cost_usd is None

    def scope(self, dimension: Dimension) -> str | None:
        """The record's value of ``dimension``; None: it has none."""
        if dimension == "agent":
            return self.agent
        return self.model if dimension == "model" else self.tenant

    def to_bytes(self) -> bytes:
        return orjson.dumps([_VERSION, *(getattr(self, name) for name in self.__slots__)])

    @classmethod
    def from_bytes(cls, data: bytes) -> Observation:
        version, *values = orjson.loads(data)
        if version != _VERSION:
            raise ValueError(f"observation format {version} is not {_VERSION}")
        return cls(*values)


def from_usage(value: dict[str, Any], *, partition: int, offset: int, at_ms: int) -> Observation:
    return Observation(
        source="usage",
        event_id=value["event_id"],
        at_ms=at_ms,
        partition=partition,
        offset=offset,
        agent=value["agent"],
        model=f"{value['provider']}/{value['model']}",
        tenant=value["tenant"] or "-",
        outcome=value["outcome"],
        reason=None,
        latency_ms=float(value["latency_ms"]),
        cost_usd=value.get("cost_usd"),  # a record of schema id 4 has none: unpriced
    )


def from_audit(value: dict[str, Any], *, partition: int, offset: int, at_ms: int) -> Observation:
    provider, model, error = value["provider"], value["model"], value["error"]
    return Observation(
        source="audit",
        event_id=value["event_id"],
        at_ms=at_ms,
        partition=partition,
        offset=offset,
        agent=value["agent"],
        model=f"{provider}/{model}" if provider and model else None,
        tenant=value["tenant"] or "-",
        outcome=value["outcome"],
        reason=error["reason"] if error else None,
        latency_ms=float(value["total_ms"]),
        cost_usd=None,
    )


def scope_key(dimension: str, value: str) -> str:
    return f"{dimension}={value}"


def split_scope_key(key: str) -> tuple[str, str]:
    dimension, _, value = key.partition("=")
    return dimension, value


def partition_of(key: str, partitions: int) -> int:
    """The observation partition of a scope. Set explicitly (not by the producer's partitioner) so
    that the evaluator can tell which open incidents belong to the partitions it was given."""
    return zlib.crc32(key.encode()) % partitions
