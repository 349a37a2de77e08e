"""Counts over time for one scope, in buckets of ``resolution_s``: what the alert rules read.

A ``Series`` keeps the buckets of the last ``lookback`` and nothing older, so its size is bounded by
``lookback / resolution`` whatever the traffic. A window is the sum of its buckets, the current
(partial) one included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.alerts.observation import Observation
from streams.core.errors import ModelVersionChanged
from streams.cost.usage_windows import VALIDATION_REASONS, latency_bucket, latency_quantile_ms

CIRCUIT_OPEN = "circuit_open"
VERSION_CHANGED = ModelVersionChanged.reason


@dataclass(slots=True)
class Bucket:
    events: int = 0  # audit records: events that ended
    dead_letters: int = 0
    circuit_open: int = 0  # dead letters because every model's circuit was open
    version_changed: int = 0  # events whose model reported another version than the agent pins
    results: int = 0
    latency: dict[int, int] = field(default_factory=dict)  # results by latency bucket (aggregate.py's bounds)
    slower: dict[float, int] = field(default_factory=dict)  # results slower than each latency rule's threshold
    calls: int = 0  # usage records: model calls
    validation_failures: int = 0
    unpriced: int = 0
    cost_usd: float = 0.0

    def add(self, obs: Observation, slow_ms: tuple[float, ...] = ()) -> None:
        if obs.source == "audit":
            self.events += 1
            dead = obs.outcome == "dead_letter"
            self.dead_letters += dead
            self.circuit_open += dead and obs.reason == CIRCUIT_OPEN
            self.version_changed += obs.reason == VERSION_CHANGED
            if obs.outcome == "result":
                self.results += 1
                index = latency_bucket(obs.latency_ms)
                self.latency[index] = self.latency.get(index, 0) + 1
                for threshold in slow_ms:
                    if obs.latency_ms > threshold:
                        self.slower[threshold] = self.slower.get(threshold, 0) + 1
        else:
            self.calls += 1
            self.validation_failures += obs.outcome in VALIDATION_REASONS
            self.unpriced += obs.cost_usd is None
            self.cost_usd += obs.cost_usd or 0.0

    def merge(self, other: Bucket) -> None:
        self.events += other.events
        self.dead_letters += other.dead_letters
        self.circuit_open += other.circuit_open
        self.version_changed += other.version_changed
        self.results += other.results
        for index, count in other.latency.items():
            self.latency[index] = self.latency.get(index, 0) + count
        for threshold, count in other.slower.items():
            self.slower[threshold] = self.slower.get(threshold, 0) + count
        self.calls += other.calls
        self.validation_failures += other.validation_failures
        self.unpriced += other.unpriced
        self.cost_usd += other.cost_usd

    def quantile_ms(self, q: float) -> float | None:
        """The upper bound of the latency bucket holding the q-th quantile of results (None: none): within
        25% above the true value. Whether a quantile is over a threshold is decided exactly, by
        ``slower``."""
        return latency_quantile_ms(self.latency, q)


@dataclass(slots=True)
class Series:
    resolution_ms: int
    slow_ms: tuple[float, ...] = ()  # the latency rules' thresholds: results slower than each are counted
    buckets: dict[int, Bucket] = field(default_factory=dict)  # bucket number (time // resolution) -> counts

    def add(self, obs: Observation) -> None:
        number = obs.at_ms // self.resolution_ms
        bucket = self.buckets.get(number)
        if bucket is None:
            bucket = self.buckets[number] = Bucket()
        bucket.add(obs, self.slow_ms)

    def window(self, now_ms: int, span_ms: int, *, ending_before_ms: int = 0) -> Bucket:
        """The sum over ``span_ms`` up to ``now_ms`` (or, with ``ending_before_ms``, the span just before
        the last ``ending_before_ms``: a baseline)."""
        last = (now_ms - ending_before_ms) // self.resolution_ms
        first = last - span_ms // self.resolution_ms + 1
        total = Bucket()
        for number, bucket in self.buckets.items():
            if first <= number <= last:
                total.merge(bucket)
        return total

    def prune(self, before_ms: int) -> None:
        """Forget the buckets that end before ``before_ms``."""
        oldest = before_ms // self.resolution_ms
        for number in [n for n in self.buckets if n < oldest]:
            del self.buckets[number]
