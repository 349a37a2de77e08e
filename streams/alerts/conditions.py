"""What each kind of rule measures, and whether the measurement breaks its threshold. Pure.

``read(rule, scope, now_ms)`` gives a ``Reading`` from a scope's counts; ``needs`` says which
observations a rule counts (the aggregator forwards only those) and ``is_sample`` which of them show
the problem (their event ids go into the alert).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.alerts.observation import Observation
from streams.alerts.rules import (
    AlertRules,
    CircuitOpen,
    ConsecutiveFailures,
    CostSpike,
    DeadLetters,
    ErrorRate,
    Latency,
    ModelVersionChangedRule,
    Rule,
    UnpricedModel,
    ValidationFailureRate,
    format_duration,
)
from streams.alerts.window import CIRCUIT_OPEN, VERSION_CHANGED, Bucket, Series
from streams.cost.usage_windows import VALIDATION_REASONS


@dataclass(frozen=True, slots=True)
class Reading:
    breached: bool
    observed: float
    threshold: float
    unit: str
    window: str
    summary: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScopeView:
    """What a rule may read of a scope: its label, counts and the current run of failed events."""

    label: str  # "support_triage", "model sim/m", "tenant acme"
    series: Series
    streak: int


def needs(rule: Rule, obs: Observation) -> bool:
    """Whether ``rule`` counts ``obs``: rates need every record of their source, counts only the bad ones."""
    if isinstance(rule, ConsecutiveFailures | ErrorRate):
        return obs.source == "audit"
    if isinstance(rule, Latency):
        return obs.source == "audit" and obs.outcome == "result"
    if isinstance(rule, ValidationFailureRate | CostSpike):
        return obs.source == "usage"
    return is_sample(rule, obs)


def is_sample(rule: Rule, obs: Observation) -> bool:
    """Whether ``obs`` shows the problem ``rule`` is about."""
    if isinstance(rule, ConsecutiveFailures | ErrorRate | DeadLetters):
        return obs.source == "audit" and obs.outcome == "dead_letter"
    if isinstance(rule, CircuitOpen):
        return obs.source == "audit" and obs.outcome == "dead_letter" and obs.reason == CIRCUIT_OPEN
    if isinstance(rule, ModelVersionChangedRule):
        return obs.source == "audit" and obs.reason == VERSION_CHANGED
    if isinstance(rule, Latency):
        return obs.source == "audit" and obs.outcome == "result" and obs.latency_ms > rule.threshold
    if isinstance(rule, ValidationFailureRate):
        return obs.source == "usage" and obs.outcome in VALIDATION_REASONS
    if isinstance(rule, CostSpike):
        return obs.source == "usage" and bool(obs.cost_usd)
    return obs.unpriced


def read(rule: Rule, scope: ScopeView, now_ms: int) -> Reading:
    if isinstance(rule, ConsecutiveFailures):
        return Reading(
            scope.streak >= rule.threshold,
            scope.streak,
            rule.threshold,
            "events",
            "consecutive",
            f"{scope.label}: the last {scope.streak} events ended as dead letters (threshold {rule.threshold})",
        )
    window = scope.series.window(now_ms, rule.window * 1000)
    return _READERS[type(rule)](rule, window, scope, now_ms)


def _error_rate(rule: ErrorRate, w: Bucket, scope: ScopeView, _now_ms: int) -> Reading:
    return _rate(rule, w.dead_letters, w.events, "events ended as dead letters", scope.label)


def _validation(rule: ValidationFailureRate, w: Bucket, scope: ScopeView, _now_ms: int) -> Reading:
    return _rate(rule, w.validation_failures, w.calls, "model answers failed validation", scope.label)


def _rate(rule: ErrorRate | ValidationFailureRate, bad: int, total: int, what: str, label: str) -> Reading:
    rate = bad / total if total else 0.0
    window = format_duration(rule.window)
    summary = f"{label}: {rate:.0%} of {what} in {window} ({bad} of {total}; threshold {rule.threshold:.0%})"
    breached = total >= rule.min_events and rate >= rule.threshold
    return Reading(breached, rate, rule.threshold, "ratio", window, summary)


def _latency(rule: Latency, w: Bucket, scope: ScopeView, _now_ms: int) -> Reading:
    slower = w.slower.get(rule.threshold, 0)
    breached = w.results >= rule.min_events and slower > (1 - rule.quantile) * w.results
    observed = w.quantile_ms(rule.quantile) or 0.0
    window, name = format_duration(rule.window), f"p{rule.quantile * 100:g}"
    summary = (
        f"{scope.label}: {name} time to a result is about {observed / 1000:.1f} s in {window} "
        f"(SLO {rule.threshold / 1000:g} s; {slower} of {w.results} results slower)"
    )
    return Reading(breached, observed, rule.threshold, "ms", window, summary, {"quantile": f"{rule.quantile:g}"})


def _cost_spike(rule: CostSpike, w: Bucket, scope: ScopeView, now_ms: int) -> Reading:
    before = scope.series.window(now_ms, rule.baseline * 1000, ending_before_ms=rule.window * 1000)
    current = w.cost_usd * 3600 / rule.window
    baseline = before.cost_usd * 3600 / rule.baseline
    limit = max(rule.threshold * baseline, rule.min_usd_per_hour)
    breached = current > 0 and current >= limit
    window = format_duration(rule.window)
    summary = (
        f"{scope.label}: spends {current:.2f} USD/h over {window}, against {baseline:.2f} USD/h in the "
        f"{format_duration(rule.baseline)} before (fires at {rule.threshold:g}x and {rule.min_usd_per_hour:g} USD/h)"
    )
    details = {"baseline_usd_per_hour": f"{baseline:.6f}", "baseline": format_duration(rule.baseline)}
    return Reading(breached, current, limit, "usd_per_hour", window, summary, details)


def _count(what: str, counted: Callable[[Bucket], int]) -> Callable[[Any, Bucket, ScopeView, int], Reading]:
    def reader(
        rule: DeadLetters | CircuitOpen | ModelVersionChangedRule | UnpricedModel,
        w: Bucket,
        scope: ScopeView,
        _now_ms: int,
    ) -> Reading:
        count, window = counted(w), format_duration(rule.window)
        summary = f"{scope.label}: {count} {what} in {window} (threshold {rule.threshold})"
        return Reading(count >= rule.threshold, count, rule.threshold, "count", window, summary)

    return reader


_READERS: dict[type, Callable[[Any, Bucket, ScopeView, int], Reading]] = {
    ErrorRate: _error_rate,
    ValidationFailureRate: _validation,
    Latency: _latency,
    CostSpike: _cost_spike,
    DeadLetters: _count("dead letters", lambda w: w.dead_letters),
    CircuitOpen: _count("events ended with every model's circuit open", lambda w: w.circuit_open),
    ModelVersionChangedRule: _count(
        "events answered by a model version other than the pinned one", lambda w: w.version_changed
    ),
    UnpricedModel: _count("calls to a model with no price (their cost is not counted)", lambda w: w.unpriced),
}


def slow_thresholds(rules: AlertRules) -> tuple[float, ...]:
    """The latency thresholds a scope's buckets count results against."""
    return tuple(sorted({rule.threshold for rule in rules.rules if isinstance(rule, Latency)}))


def label(dimension: str, value: str) -> str:
    return value if dimension == "agent" else f"{dimension} {value}"
