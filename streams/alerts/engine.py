"""Incidents: the rules evaluated over each scope's observations, firing once and resolving once.

An incident opens (one ``firing`` alert) when a rule's reading breaks its threshold, stays quiet while
it goes on breaking it, and closes (one ``resolved`` alert) once the rule has read clear for
``clear_after_s`` in a row: a condition that flickers around its threshold does not page twice.
Everything here is plain state and values; time comes in as ``now_ms``. State is bounded: a scope
keeps buckets of the rules' lookback only and at most ``MAX_SAMPLES`` event ids per rule, a scope with
nothing left to count or watch is dropped, and at most ``max_scopes`` scopes are kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from streams.alerts.conditions import Reading, ScopeView, is_sample, label, needs, read, slow_thresholds
from streams.alerts.observation import Observation, split_scope_key
from streams.alerts.records import MAX_SAMPLES, dedup_key
from streams.alerts.rules import AlertRules, ConsecutiveFailures, Rule
from streams.alerts.window import Series
from streams.core.alert import FIRING, RESOLVED, Alert, Dimension, Status


@dataclass(frozen=True, slots=True)
class Incident:
    started_at_ms: int
    last_breach_ms: int  # the last evaluation that read the rule breached
    sample_event_ids: tuple[str, ...]


def transition(
    incident: Incident | None, reading: Reading, *, now_ms: int, clear_after_ms: int, samples: tuple[str, ...]
) -> tuple[Incident | None, Status | None]:
    """The incident after one evaluation, and the alert status to send (None: nothing to say)."""
    if reading.breached:
        if incident is None:
            return Incident(now_ms, now_ms, samples), FIRING
        return replace(incident, last_breach_ms=now_ms), None
    if incident is not None and now_ms - incident.last_breach_ms >= clear_after_ms:
        return None, RESOLVED
    return incident, None


@dataclass(slots=True)
class ScopeState:
    dimension: Dimension
    value: str
    partition: int  # of the observation topic: the evaluator owns scopes by partition
    series: Series
    streak: int = 0  # events in a row that ended as dead letters
    applied: dict[tuple[str, int], int] = field(default_factory=dict)  # (source, partition) -> highest offset
    samples: dict[str, deque[tuple[int, str]]] = field(default_factory=dict)  # by rule: (at_ms, event id)
    incidents: dict[str, Incident] = field(default_factory=dict)  # by rule

    def idle(self) -> bool:
        return not self.series.buckets and not self.streak and not self.incidents


class AlertEngine:
    def __init__(self, rules: AlertRules, *, runbook: Callable[[str], str], max_scopes: int = 10_000) -> None:
        self.rules = rules
        self._runbook = runbook
        self._max_scopes = max_scopes
        self._by_dimension: dict[Dimension, list[Rule]] = {}
        for rule in rules.rules:
            self._by_dimension.setdefault(rule.by, []).append(rule)
        self._slow_ms = slow_thresholds(rules)
        self._lookback_ms = rules.lookback_s * 1000
        self.scopes: dict[str, ScopeState] = {}
        self.refused = 0  # observations of new scopes beyond max_scopes

    def scope_keys(self, obs: Observation) -> list[str]:
        """The scopes ``obs`` is forwarded to: those whose rules count it."""
        keys = []
        for dimension, rules in self._by_dimension.items():
            value = obs.scope(dimension)
            if value is not None and any(needs(rule, obs) for rule in rules):
                keys.append(f"{dimension}={value}")
        return keys

    def observe(self, key: str, obs: Observation, *, partition: int) -> None:
        scope = self._scope(key, partition)
        if scope is None:
            return
        source = (obs.source, obs.partition)
        if scope.applied.get(source, -1) >= obs.offset:  # forwarded again after a crash: counted already
            return
        scope.applied[source] = obs.offset
        scope.series.add(obs)
        if obs.source == "audit":
            scope.streak = scope.streak + 1 if obs.outcome == "dead_letter" else 0
        for rule in self._by_dimension.get(scope.dimension, ()):
            if is_sample(rule, obs):
                scope.samples.setdefault(rule.name, deque(maxlen=MAX_SAMPLES)).append((obs.at_ms, obs.event_id))

    def evaluate(self, now_ms: int, *, partitions: Iterable[int]) -> list[Alert]:
        """Every rule over every scope of ``partitions``; the alerts to send."""
        owned = set(partitions)
        alerts: list[Alert] = []
        for key, scope in list(self.scopes.items()):
            if scope.partition not in owned:
                continue
            scope.series.prune(now_ms - self._lookback_ms)
            for rule in self._by_dimension.get(scope.dimension, ()):
                alert = self._step(scope, rule, now_ms)
                if alert is not None:
                    alerts.append(alert)
            if scope.idle():
                del self.scopes[key]
        return alerts

    def restore(self, alert: Alert, *, now_ms: int, partition: int) -> bool:
        """Take over an incident that was firing before this evaluator had the scope (a restart, a
        rebalance): it is not fired again, and resolves once its rule reads clear for its period."""
        rule = next((r for r in self._by_dimension.get(alert.dimension, []) if r.name == alert.rule), None)
        if alert.status != FIRING or rule is None:  # e.g. a budget alert: not this engine's to resolve
            return False
        scope = self._scope(f"{alert.dimension}={alert.scope}", partition)
        if scope is None:
            return False
        scope.incidents[rule.name] = Incident(alert.started_at_ms, now_ms, alert.sample_event_ids)
        return True

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the scopes of partitions this evaluator no longer owns."""
        gone = set(partitions)
        self.scopes = {key: scope for key, scope in self.scopes.items() if scope.partition not in gone}

    def _scope(self, key: str, partition: int) -> ScopeState | None:
        scope = self.scopes.get(key)
        if scope is None:
            dimension, value = split_scope_key(key)
            if dimension not in self._by_dimension:  # forwarded under rules that have changed since
                return None
            if len(self.scopes) >= self._max_scopes:
                self.refused += 1
                return None
            series = Series(self.rules.resolution_s * 1000, self._slow_ms)
            scope = self.scopes[key] = ScopeState(dimension, value, partition, series)
        return scope

    def _step(self, scope: ScopeState, rule: Rule, now_ms: int) -> Alert | None:
        view = ScopeView(label(scope.dimension, scope.value), scope.series, scope.streak)
        reading = read(rule, view, now_ms)
        before = scope.incidents.get(rule.name)
        after, status = transition(
            before,
            reading,
            now_ms=now_ms,
            clear_after_ms=self.rules.clear_after_ms(rule),
            samples=self._samples(scope, rule, now_ms),
        )
        if after is None:
            scope.incidents.pop(rule.name, None)
        else:
            scope.incidents[rule.name] = after
        incident = after or before
        if status is None or incident is None:
            return None
        return self._alert(scope, rule, reading, status=status, incident=incident, now_ms=now_ms)

    def _samples(self, scope: ScopeState, rule: Rule, now_ms: int) -> tuple[str, ...]:
        recent = scope.samples.get(rule.name, ())
        since = 0 if isinstance(rule, ConsecutiveFailures) else now_ms - rule.window_s * 1000
        return tuple(event_id for at_ms, event_id in recent if at_ms >= since)

    def _alert(
        self, scope: ScopeState, rule: Rule, reading: Reading, *, status: Status, incident: Incident, now_ms: int
    ) -> Alert:
        return Alert(
            dedup_key=dedup_key(rule.name, scope.dimension, scope.value),
            status=status,
            rule=rule.name,
            severity=rule.severity,
            dimension=scope.dimension,
            scope=scope.value,
            observed=reading.observed,
            threshold=reading.threshold,
            unit=reading.unit,
            window=reading.window,
            summary=reading.summary if status == FIRING else f"Resolved: {reading.summary}",
            runbook_url=self._runbook(rule.runbook_anchor),
            at_ms=now_ms,
            started_at_ms=incident.started_at_ms,
            agent=scope.value if scope.dimension == "agent" else None,
            sample_event_ids=incident.sample_event_ids,
            details=reading.details,
        )
