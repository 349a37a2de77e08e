"""Prometheus metrics of `keel review serve`, at ``/metrics`` on its web server.

Decisions are counted by the applier, once each, when their records are written: with several review
services, each counts the decisions of the partitions it applies, and Prometheus sums them. The queue
depth is read from the queue at scrape time. Labels are agents from the definitions and Keel's own
action names, never item ids or reviewers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.kafka.skipped import SkippedRecords

# From a minute to a week: reviewers answer in minutes to days.
DECISION_BUCKETS_S = (60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86_400, 2 * 86_400, 7 * 86_400)


class ReviewMetrics:
    def __init__(
        self, agents: list[str], depths: Callable[[], dict[str, int]], *, skipped: SkippedRecords | None = None
    ) -> None:
        """``skipped``: the records the process's readers passed over (streams/kafka/skipped.py)."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.skipped = skipped or SkippedRecords()
        self.skipped.register(r)
        self.decisions = Counter(
            "keel_review_decisions",
            "Decisions applied, by action (approve, edit, reject) and the item's agent config version",
            ["agent", "config_version", "action"],
            registry=r,
        )
        self.refused = Counter(
            "keel_review_decisions_refused",
            "Decisions in the log that were not applied: a later decision on a decided item, or on no known item",
            ["agent", "why"],
            registry=r,
        )
        self.time_to_decision = Histogram(
            "keel_review_time_to_decision_seconds",
            "From a review item's creation to its first decision",
            ["agent", "config_version"],
            buckets=DECISION_BUCKETS_S,
            registry=r,
        )
        r.register(_QueueDepth(agents, depths))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _QueueDepth(Collector):
    def __init__(self, agents: list[str], depths: Callable[[], dict[str, int]]) -> None:
        self._agents, self._depths = agents, depths

    def collect(self) -> Iterator[Metric]:
        gauge, depths = _queue_depth(), self._depths()
        for agent in self._agents:
            gauge.add_metric([agent], depths.get(agent, 0))
        yield gauge

    def describe(self) -> Iterator[Metric]:
        yield _queue_depth()


def _queue_depth() -> GaugeMetricFamily:
    return GaugeMetricFamily("keel_review_queue_depth", "Review items waiting for a decision", labels=["agent"])
