"""Usage statistics for a window: mergeable, idempotent per usage record, and pure.

The aggregation stream (streams/apps/aggregator/usage_stream.py) adds each usage record to the windows it falls in,
per agent, per model (a tool call counts under ``<connector>/<tool>``), per tenant and per kind
(model calls, tool calls). ``UsageStats`` counts calls, successes, failures by reason,
validation failures, tokens, cost (and unpriced calls), and latency in log-spaced buckets, so that
percentiles can be read from any merge of windows or partitions. Each value also remembers the
highest offset it took from each ``keel.usage`` partition: a record redelivered after a crash (its
table update was written, its offset not yet committed) is recognised and not counted twice.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

# Latency bucket upper bounds in ms: 10 ms x 1.25^i up to ~10 minutes (a percentile is within 25%).
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(10 * 1.25**i for i in range(50))


def latency_bucket(latency_ms: float) -> int:
    """The index of the latency bucket (``LATENCY_BOUNDS_MS``) a duration falls in."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def latency_quantile_ms(latency: dict[int, int], q: float) -> float | None:
    """The upper bound of the bucket holding the q-th quantile of counts by bucket (None: none): within
    25% above the true value."""
    total = sum(latency.values())
    if not total:
        return None
    rank, seen = q * total, 0
    for index in sorted(latency):
        seen += latency[index]
        if seen >= rank:
            return LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)]
    return LATENCY_BOUNDS_MS[-1]


VALIDATION_REASONS = frozenset({"output_not_json", "output_truncated", "output_schema_violation", "output_invalid"})
DIMENSIONS = ("agent", "model", "tenant", "kind")  # kind: model calls or tool calls


@dataclass(frozen=True, slots=True)
class WindowSpec:
    table: str  # the faust table's name; its changelog topic is named after it (streams/contracts/topics.py)
    size_s: int
    step_s: int  # == size_s: tumbling
    expires: timedelta  # how long a window is kept, locally and in the changelog


MINUTE = WindowSpec("minute", 60, 60, timedelta(days=1))
HOUR = WindowSpec("hour", 3600, 300, timedelta(days=8))  # hopping: a record is in 12 windows
WINDOWS = (MINUTE, HOUR)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """The fields of a ``keel.usage`` value the aggregation needs, and where the record was read."""

    agent: str
    provider: str
    model: str
    tenant: str
    outcome: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    cost_usd: float | None
    at_ms: int
    partition: int
    offset: int
    kind: str = "model"  # model | tool (a tool call: provider is the connector, model the tool)

    @classmethod
    def from_value(cls, value: dict[str, Any], *, partition: int, offset: int, at_ms: int) -> UsageRecord:
        """``at_ms``: the record's timestamp, which places it in windows (Keel sets it to the
        attempt's start)."""
        return cls(
            agent=value["agent"],
            provider=value["provider"],
            model=value["model"],
            tenant=value["tenant"] or "-",
            outcome=value["outcome"],
            tokens_in=value["tokens_in"],
            tokens_out=value["tokens_out"],
            latency_ms=value["latency_ms"],
            cost_usd=value.get("cost_usd"),  # a record of schema id 4 has none: unpriced
            at_ms=at_ms,
            partition=partition,
            offset=offset,
            kind=value.get("kind") or "model",  # records before schema id 17 are all model calls
        )

    def problem(self) -> str | None:
        """What in this record a Keel usage record never holds, or None: the windows add the numbers
        up, and their changelog (JSON) has no NaN, so one that is not finite would break the window
        for good."""
        numbers_ok = math.isfinite(self.latency_ms) and self.latency_ms >= 0
        if self.cost_usd is not None:
            numbers_ok = numbers_ok and math.isfinite(self.cost_usd) and self.cost_usd >= 0
        if not numbers_ok or self.tokens_in < 0 or self.tokens_out < 0:
            return f"latency {self.latency_ms}, cost {self.cost_usd}, tokens {self.tokens_in}/{self.tokens_out}"
        return None

    def table_keys(self) -> list[str]:
        """The table keys this record counts under. The input partition is part of the key: each
        partition's worker owns its part, and readers add the parts up."""
        values = {
            "agent": self.agent,
            "model": f"{self.provider}/{self.model}",
            "tenant": self.tenant,
            "kind": self.kind,
        }
        return [f"p{self.partition}|{dimension}={values[dimension]}" for dimension in DIMENSIONS]


def split_key(key: str) -> tuple[int, str, str]:
    """``p3|agent=triage`` -> (3, "agent", "triage")."""
    partition, _, rest = key.partition("|")
    dimension, _, value = rest.partition("=")
    return int(partition[1:]), dimension, value


@dataclass(slots=True)
class UsageStats:
    calls: int = 0
    successes: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # by reason code
    validation_failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    latency: dict[int, int] = field(default_factory=dict)  # bucket index -> calls
    applied: dict[int, int] = field(default_factory=dict)  # usage partition -> highest offset counted

    def __add__(self, other: UsageStats) -> UsageStats:
        """The stream's update: ``other`` (one record's stats) is skipped when this value already
        counted its partition up to the same or a later offset (a redelivery)."""
        if any(self.applied.get(p, -1) >= offset for p, offset in other.applied.items()):
            return self
        return self.merged(other)

    def merged(self, other: UsageStats) -> UsageStats:
        """A plain sum, for reading: windows, partitions."""
        return UsageStats(
            calls=self.calls + other.calls,
            successes=self.successes + other.successes,
            failures=_sum(self.failures, other.failures),
            validation_failures=self.validation_failures + other.validation_failures,
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            cost_usd=self.cost_usd + other.cost_usd,
            unpriced=self.unpriced + other.unpriced,
            latency=_sum(self.latency, other.latency),
            applied={
                p: max(self.applied.get(p, -1), other.applied.get(p, -1)) for p in {*self.applied, *other.applied}
            },
        )

    def __radd__(self, other: object) -> UsageStats:
        if other is None:  # a window not seen yet
            return self
        if isinstance(other, UsageStats):
            return other + self
        if isinstance(other, dict):  # faust's recovery hands back the JSON form of a stored value
            return UsageStats.from_doc(other) + self
        raise TypeError(f"cannot add usage statistics to {type(other).__name__}")

    @classmethod
    def of(cls, record: UsageRecord) -> UsageStats:
        ok = record.outcome == "ok"
        return cls(
            calls=1,
            successes=int(ok),
            failures={} if ok else {record.outcome: 1},
            validation_failures=int(record.outcome in VALIDATION_REASONS),
            tokens_in=record.tokens_in,
            tokens_out=record.tokens_out,
            cost_usd=record.cost_usd or 0.0,
            unpriced=int(record.cost_usd is None),
            latency={latency_bucket(record.latency_ms): 1},
            applied={record.partition: record.offset},
        )

    def percentile_ms(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-th quantile (None: no calls)."""
        return latency_quantile_ms(self.latency, q)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "calls": self.calls,
                "successes": self.successes,
                "failures": self.failures,
                "validation_failures": self.validation_failures,
                "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out,
                "cost_usd": self.cost_usd,
                "unpriced": self.unpriced,
                "latency": {str(k): v for k, v in self.latency.items()},
                "applied": {str(k): v for k, v in self.applied.items()},
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> UsageStats:
        return cls.from_doc(orjson.loads(data))

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> UsageStats:
        return cls(
            calls=doc["calls"],
            successes=doc["successes"],
            failures=doc["failures"],
            validation_failures=doc["validation_failures"],
            tokens_in=doc["tokens_in"],
            tokens_out=doc["tokens_out"],
            cost_usd=doc["cost_usd"],
            unpriced=doc["unpriced"],
            latency={int(k): v for k, v in doc["latency"].items()},
            applied={int(k): v for k, v in doc["applied"].items()},
        )


def _sum(a: dict[Any, int], b: dict[Any, int]) -> dict[Any, int]:
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + count
    return out


@dataclass(slots=True)
class Lateness:
    """Declared lateness per usage partition: a record older than the partition's latest record
    time minus ``allowed_ms`` is too late for its windows (counted apart, not silently dropped)."""

    allowed_ms: int
    latest_ms: dict[int, int] = field(default_factory=dict)

    def too_late(self, record: UsageRecord) -> bool:
        latest = max(self.latest_ms.get(record.partition, record.at_ms), record.at_ms)
        self.latest_ms[record.partition] = latest
        return record.at_ms < latest - self.allowed_ms
