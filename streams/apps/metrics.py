"""Prometheus metrics of one worker, served at ``/metrics`` on its web server.

Counters and histograms are updated once per event, from its outcome; gauges (in flight, circuits,
consumer lag, budgets) are read when Prometheus scrapes. Labels stay bounded: agents, providers and
models come from the agent definitions, outcomes and failure reasons from Keel's own codes
(streams/core/errors.py), partitions from the topic plan, budget scopes from the declared budgets. Never event
ids, other tenants or record keys. docs/operations.md lists every metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.core.domain import DeadLetter, Outcome, outcome_name
from streams.cost.pricing import Pricing
from streams.kafka.skipped import SkippedRecords
from streams.pipeline.circuit import CircuitState, CircuitView

EVENT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MODEL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60)
WAIT_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text format, as every /metrics serves it
CIRCUIT_VALUE = {CircuitState.CLOSED: 0.0, CircuitState.HALF_OPEN: 0.5, CircuitState.OPEN: 1.0}


@dataclass(frozen=True, slots=True)
class LiveSources:
    """What the gauges read at scrape time."""

    in_flight: Callable[[], Iterable[tuple[str, int]]]  # (agent, events in flight)
    circuits: Callable[[], Iterable[CircuitView]]
    lag: Callable[[], Iterable[tuple[str, int, int]]]  # (topic, partition, end offset - committed offset)
    budgets: Callable[[], Iterable[tuple[str, str, str, float]]] = list  # (scope, period, unit, left)


class WorkerMetrics:
    def __init__(self, pricing: Pricing) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._pricing = pricing
        r = self.registry
        self.events = Counter("keel_events", "Events handled, by how they ended", ["agent", "outcome"], registry=r)
        self.re_emitted = Counter(
            "keel_events_re_emitted", "Redelivered events answered from the outcome store", ["agent"], registry=r
        )
        self.control_ignored = Counter(
            "keel_control_headers_ignored",
            "Input records whose unsigned control headers (re-run, replay) were ignored",
            ["agent"],
            registry=r,
        )
        self.dead_letters = Counter("keel_dead_letters", "Dead letters, by reason", ["agent", "reason"], registry=r)
        self.attempts = Counter(
            "keel_model_attempts",
            "Model calls, by purpose (initial, retry, reask, trim, fallback, tier_retry) and result (ok or reason)",
            ["agent", "provider", "model", "purpose", "result"],
            registry=r,
        )
        self.tokens = Counter(
            "keel_model_tokens", "Tokens, in and out", ["agent", "provider", "model", "direction"], registry=r
        )
        self.cost = Counter(
            "keel_model_cost_usd", "Cost by the price table", ["agent", "provider", "model"], registry=r
        )
        self.unpriced = Counter(
            "keel_model_unpriced_attempts",
            "Calls to a model the price table has no price for",
            ["provider", "model"],
            registry=r,
        )
        self.event_seconds = Histogram(
            "keel_event_duration_seconds",
            "From an event's arrival at the worker to its outcome",
            ["agent", "outcome"],
            buckets=EVENT_BUCKETS_S,
            registry=r,
        )
        self.model_seconds = Histogram(
            "keel_model_latency_seconds", "One model call", ["provider", "model"], buckets=MODEL_BUCKETS_S, registry=r
        )
        self.rate_limits = RateLimitMetrics(r)
        self.skipped = SkippedRecords()  # by the worker's budget owner and budget client (streams/kafka/skipped.py)
        self.skipped.register(r)
        self.model_queue = ModelQueueMetrics(r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def observe(self, agent: str, outcome: Outcome) -> None:
        """Count one event's outcome and the model attempts it made in this pass."""
        name = outcome_name(outcome)
        trace = outcome.trace
        child = self._child
        child(self.events, agent, name).inc()
        child(self.event_seconds, agent, name).observe(trace.total_ms / 1000)
        if isinstance(outcome, DeadLetter):
            child(self.dead_letters, agent, outcome.failure.reason).inc()
        for a in trace.new_attempts:
            child(self.attempts, agent, a.provider, a.model, a.purpose, a.outcome).inc()
            child(self.model_seconds, a.provider, a.model).observe(a.latency_s)
            child(self.tokens, agent, a.provider, a.model, "in").inc(a.tokens_in)
            child(self.tokens, agent, a.provider, a.model, "out").inc(a.tokens_out)
            cost = self._pricing.attempt_cost(a)
            if cost.usd is None:
                child(self.unpriced, a.provider, a.model).inc()
            else:
                child(self.cost, agent, a.provider, a.model).inc(cost.usd)

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set: prometheus-client's ``labels`` is
        slow, and runs several times per event. Label sets are bounded (see above), so is this."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def watch(self, sources: LiveSources) -> None:
        self.registry.register(_Live(sources))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _Live(Collector):
    def __init__(self, sources: LiveSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        in_flight = GaugeMetricFamily("keel_in_flight", "Events in flight (model calls overlap)", labels=["agent"])
        for agent, count in self._sources.in_flight():
            in_flight.add_metric([agent], count)
        circuits = GaugeMetricFamily(
            "keel_circuit_state", "Per model: 0 closed, 0.5 half-open, 1 open", labels=["provider", "model"]
        )
        for view in self._sources.circuits():
            provider, _, model = view.key.partition("/")
            circuits.add_metric([provider, model], CIRCUIT_VALUE[view.state])
        lag = GaugeMetricFamily(
            "keel_consumer_lag", "Records not yet committed, per input partition", labels=["topic", "partition"]
        )
        for topic, partition, behind in self._sources.lag():
            lag.add_metric([topic, str(partition)], behind)
        budgets = GaugeMetricFamily(
            "keel_budget_remaining",
            "What a budget this worker owns has left this day or month (scope: agent:<name> or tenant:<tenant>)",
            labels=["scope", "period", "unit"],
        )
        for scope, period, unit, left in self._sources.budgets():
            budgets.add_metric([scope, period, unit], left)
        yield from (in_flight, circuits, lag, budgets)


class RateLimitMetrics:
    """What the rate limiter reports (streams/pipeline/limiter.py): waits and give-ups per agent, model and the
    limit that held the call (``agent_requests``, ``agent_tokens``, ``model_requests``, ``model_tokens``,
    ``provider_hold``), and the holds providers asked for."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["agent", "provider", "model", "limit"]
        self.wait_seconds = Histogram(
            "keel_rate_limit_wait_seconds",
            "How long model calls that had to wait waited for a rate limit",
            labels,
            buckets=WAIT_BUCKETS_S,
            registry=registry,
        )
        self.limited = Counter(
            "keel_rate_limited",
            "Model calls a rate limit delayed (action waited) or gave up on, because waiting would pass the "
            "event's deadline (action refused: the chain moves on as after a 429)",
            [*labels, "action"],
            registry=registry,
        )
        self.holds = Counter(
            "keel_rate_limit_holds",
            "Answers asking to hold every call to a model: a Retry-After (cause retry_after), or an "
            "x-ratelimit-remaining-* of 0 (cause exhausted)",
            ["provider", "model", "cause"],
            registry=registry,
        )
        self.share = Gauge(
            "keel_rate_limit_share",
            "This worker's part of each declared limit (of an agent, or of a provider/model), from the "
            "partitions it owns; a group's workers add up to 1",
            ["scope", "name"],
            registry=registry,
        )

    def waited(self, agent: str, model_key: str, limit: str, seconds: float) -> None:
        provider, _, model = model_key.partition("/")
        self.wait_seconds.labels(agent, provider, model, limit).observe(seconds)
        self.limited.labels(agent, provider, model, limit, "waited").inc()

    def refused(self, agent: str, model_key: str, limit: str) -> None:
        provider, _, model = model_key.partition("/")
        self.limited.labels(agent, provider, model, limit, "refused").inc()

    def held(self, model_key: str, cause: str) -> None:
        provider, _, model = model_key.partition("/")
        self.holds.labels(provider, model, cause).inc()

    def shared(self, scope: str, name: str, share: float) -> None:
        self.share.labels(scope, name).set(share)


class ModelQueueMetrics:
    """What the model slots report (streams/pipeline/model_slots.py): how long calls to a model with a
    ``max_concurrent`` waited for a slot (0 when one was free), and the calls that gave up waiting."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.wait_seconds = Histogram(
            "keel_model_queue_wait_seconds",
            "How long calls to a model with a concurrency limit (max_concurrent) waited in the worker for a "
            "slot before their request was sent (0: a slot was free)",
            ["provider", "model"],
            buckets=WAIT_BUCKETS_S,
            registry=registry,
        )
        self.gave_up_calls = Counter(
            "keel_model_queue_gave_up",
            "Calls that got no slot of their model before their event's deadline (the event's deadline route)",
            ["provider", "model"],
            registry=registry,
        )
        self._children: dict[tuple[int, str], Any] = {}

    def waited(self, model_key: str, seconds: float) -> None:
        self._child(self.wait_seconds, model_key).observe(seconds)

    def gave_up(self, model_key: str, seconds: float) -> None:
        self._child(self.gave_up_calls, model_key).inc()

    def _child(self, metric: Any, model_key: str) -> Any:
        """``metric.labels(provider, model)``, looked up once per model (it runs on every limited call)."""
        key = (id(metric), model_key)
        child = self._children.get(key)
        if child is None:
            provider, _, model = model_key.partition("/")
            child = self._children[key] = metric.labels(provider, model)
        return child
