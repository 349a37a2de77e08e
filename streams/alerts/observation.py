"""Observations: the few facts of a usage or audit record that the alert rules look at.

The aggregator turns each ``keel.usage`` record (one model call) and ``keel.audit`` record (one event's
outcome) into an ``Observation`` and forwards it to the observation topic keyed by the scope a rule
evaluates (``agent=support_triage``, ``model=openai/gpt-4o-mini``). Usage and audit topics are keyed by
event id, so an agent's records are spread over every partition; keyed by scope, one aggregator sees
all of them. The encoding is compact and versioned (internal, not a public contract).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streams.core.alert import Dimension
from streams.core.errors import ModelVersionChanged

_VERSION = 1
Source = Literal["usage", "audit"]
_TEXT = ("event_id", "agent", "tenant", "outcome")
_COUNTS = ("at_ms", "partition", "offset")


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
        """Raises ``ValueError`` or ``TypeError`` for bytes ``to_bytes`` did not write."""
        version, *values = orjson.loads(data)
        if version != _VERSION:
            raise ValueError(f"observation format {version} is not {_VERSION}")
        obs = cls(*values)
        problem = obs.problem()
        if problem is not None:
            raise ValueError(problem)
        return obs

    def problem(self) -> str | None:
        """What in this observation a Keel record never holds, or None. The rules add its numbers up,
        and its encoding has no NaN: a value that is not a finite number would stop the evaluator."""
        if self.source not in ("usage", "audit"):
            return f"source {self.source!r}"
        if not all(isinstance(getattr(self, name), str) for name in _TEXT):
            return "a text field that is not text"
        if not all(type(getattr(self, name)) is int and 0 <= getattr(self, name) < 2**53 for name in _COUNTS):
            return f"a time or position out of range ({self.at_ms}, {self.partition}, {self.offset})"
        if not all(value is None or isinstance(value, str) for value in (self.model, self.reason)):
            return "a model or reason that is not text"
        if not _measure(self.latency_ms) or not (self.cost_usd is None or _measure(self.cost_usd)):
            return f"a latency or cost that is not a finite, positive number ({self.latency_ms!r}, {self.cost_usd!r})"
        return None


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
    """``reason``: the error's, or ``model_version_changed`` for an output whose model reported another
    version than the agent pins (a warning of the record)."""
    provider, model, error = value["provider"], value["model"], value["error"]
    changed = any(str(w).startswith(ModelVersionChanged.reason) for w in value.get("warnings") or ())
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
        reason=error["reason"] if error else (ModelVersionChanged.reason if changed else None),
        latency_ms=float(value["total_ms"]),
        cost_usd=None,
    )


def _measure(value: object) -> bool:
    """A duration or a cost: a finite number, not negative."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def scope_key(dimension: str, value: str) -> str:
    return f"{dimension}={value}"


def split_scope_key(key: str) -> tuple[str, str]:
    dimension, _, value = key.partition("=")
    return dimension, value


def partition_of(key: str, partitions: int) -> int:
    """The observation partition of a scope. Set explicitly (not by the producer's partitioner) so
    that the evaluator can tell which open incidents belong to the partitions it was given."""
    return zlib.crc32(key.encode()) % partitions
