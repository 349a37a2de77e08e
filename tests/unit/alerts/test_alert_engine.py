"""The rules and the incident state machine, over plain observations and a clock that is just a number."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from streams.alerts.engine import AlertEngine
from streams.alerts.observation import Observation
from streams.alerts.rules import AlertRules
from streams.core.alert import Alert

T0 = 1_800_000_000_000
S = 1000  # ms
_offsets = itertools.count()


def audit(outcome: str = "dead_letter", *, at: int = T0, agent: str = "triage", **fields: Any) -> Observation:
    values: dict[str, Any] = {
        "source": "audit",
        "event_id": f"a{next(_offsets)}",
        "at_ms": at,
        "partition": 0,
        "offset": next(_offsets),
        "agent": agent,
        "model": "sim/m",
        "tenant": "acme",
        "outcome": outcome,
        "reason": "provider_5xx" if outcome == "dead_letter" else None,
        "latency_ms": 500.0,
        "cost_usd": None,
    }
    return Observation(**{**values, **fields})


def usage(outcome: str = "ok", *, at: int = T0, cost: float | None = 0.001, **fields: Any) -> Observation:
    return audit(outcome, at=at, **{"source": "usage", "reason": None, "cost_usd": cost, **fields})


def engine(*rules: dict[str, Any], clear_after_s: int = 60, **options: Any) -> AlertEngine:
    spec = AlertRules.model_validate({"resolution_s": 1, "clear_after_s": clear_after_s, "rules": list(rules)})
    return AlertEngine(spec, runbook=lambda anchor: f"docs/runbooks.md#{anchor}", **options)


def feed(alerts: AlertEngine, *observations: Observation) -> None:
    for obs in observations:
        for key in alerts.scope_keys(obs):
            alerts.observe(key, obs, partition=0)


def tick(alerts: AlertEngine, at: int) -> list[tuple[str, str, float]]:
    return [(a.status, a.dedup_key, a.observed) for a in alerts.evaluate(at, partitions=[0])]


CONSECUTIVE = {"name": "consecutive_failures", "kind": "consecutive_failures", "threshold": 5, "severity": "critical"}


def test_consecutive_failures_fire_once_stay_quiet_and_resolve_after_the_clear_period() -> None:
    alerts = engine(CONSECUTIVE)
    failures = [audit(at=T0 + i * S) for i in range(12)]
    feed(alerts, *failures[:4])
    assert tick(alerts, T0 + 4 * S) == []
    feed(alerts, failures[4])
    [firing] = alerts.evaluate(T0 + 5 * S, partitions=[0])
    assert (firing.status, firing.dedup_key, firing.observed, firing.threshold) == (
        "firing",
        "consecutive_failures:agent=triage",
        5,
        5,
    )
    assert firing.agent == "triage" and firing.severity == "critical" and firing.window == "consecutive"
    assert firing.sample_event_ids == tuple(f.event_id for f in failures[:5])
    assert firing.runbook_url == "docs/runbooks.md#runbook-consecutive-failures" and firing.started_at_ms == T0 + 5 * S
    feed(alerts, *failures[5:])
    assert tick(alerts, T0 + 20 * S) == []  # still failing: quiet
    feed(alerts, audit("result", at=T0 + 21 * S))
    assert tick(alerts, T0 + 21 * S) == []
    assert tick(alerts, T0 + 79 * S) == []  # clear, but not for 60 s yet
    [resolved] = alerts.evaluate(T0 + 80 * S, partitions=[0])
    assert (resolved.status, resolved.observed, resolved.started_at_ms) == ("resolved", 0, T0 + 5 * S)
    assert resolved.summary.startswith("Resolved: ") and len(resolved.sample_event_ids) == 5
    assert tick(alerts, T0 + 200 * S) == []


def test_a_condition_that_flickers_within_the_clear_period_stays_one_incident() -> None:
    alerts = engine(CONSECUTIVE)
    at = T0
    statuses = []
    for _ in range(3):  # fail 5, succeed once, 30 s later fail again
        feed(alerts, *(audit(at=at + i) for i in range(5)))
        statuses += tick(alerts, at + 10)
        feed(alerts, audit("review", at=at + 20))
        statuses += tick(alerts, at + 30 * S)
        at += 30 * S
    assert [s[0] for s in statuses] == ["firing"]
    assert [s[0] for s in tick(alerts, at + 60 * S)] == ["resolved"]


def test_error_rate_needs_its_minimum_and_leaves_with_the_window() -> None:
    alerts = engine({"name": "error_rate", "kind": "error_rate", "window": "1m", "threshold": 0.5, "min_events": 6})
    feed(alerts, *(audit(at=T0 + i * S) for i in range(5)))
    assert tick(alerts, T0 + 5 * S) == []  # 100% failed, but only 5 events
    feed(alerts, audit("result", at=T0 + 6 * S), audit("result", at=T0 + 7 * S))
    assert tick(alerts, T0 + 7 * S) == [("firing", "error_rate:agent=triage", 5 / 7)]
    feed(alerts, *(audit("result", at=T0 + 30 * S + i) for i in range(6)))  # 5 of 13: below 50%
    assert tick(alerts, T0 + 31 * S) == []
    assert tick(alerts, T0 + 90 * S) == [("resolved", "error_rate:agent=triage", 0.0)]


def test_validation_failure_rate_counts_model_answers() -> None:
    rule = {"name": "invalid", "kind": "validation_failure_rate", "window": "1m", "threshold": 0.25, "min_events": 5}
    alerts = engine(rule)
    feed(alerts, *(usage(at=T0) for _ in range(3)), usage("output_not_json"), usage("provider_5xx"))
    assert tick(alerts, T0) == []  # 1 in 5: a 5xx is not a validation failure
    feed(alerts, usage("output_schema_violation"))
    [(status, _key, observed)] = tick(alerts, T0 + S)
    assert status == "firing" and observed == pytest.approx(2 / 6)


def test_latency_is_judged_by_the_share_of_slower_results_not_the_bucket_bound() -> None:
    rule = {"name": "slow", "kind": "latency", "window": "1m", "threshold": 60_000, "min_events": 20}
    alerts = engine(rule)
    feed(alerts, *(audit("result", latency_ms=50_000.0) for _ in range(19)))
    feed(alerts, audit("result", latency_ms=61_000.0))  # 1 of 20 slower: p95 is still under 60 s
    feed(alerts, audit("dead_letter", latency_ms=900_000.0))  # not a result: not counted
    assert tick(alerts, T0) == []
    feed(alerts, audit("result", latency_ms=70_000.0))  # 2 of 21 slower: over 5%
    [alert] = alerts.evaluate(T0, partitions=[0])
    assert alert.status == "firing" and alert.observed >= 60_000 and alert.unit == "ms"
    assert len(alert.sample_event_ids) == 2


def test_cost_spike_compares_the_window_with_its_trailing_baseline() -> None:
    rule = {"name": "spike", "kind": "cost_spike", "window": "1m", "baseline": "10m", "threshold": 3}
    alerts = engine({**rule, "min_usd_per_hour": 0.5})
    start = T0 - 10 * 60 * S - 30 * S  # the ten minutes before the last one
    feed(alerts, *(usage(at=start + i * 60 * S, cost=0.01) for i in range(10)))  # 0.6 USD/h for 10 minutes
    feed(alerts, usage(at=T0 - 30 * S, cost=0.02))  # 1.2 USD/h now: twice the baseline
    assert tick(alerts, T0) == []
    feed(alerts, usage(at=T0 - 20 * S, cost=0.02))  # 2.4 USD/h: four times
    [alert] = alerts.evaluate(T0, partitions=[0])
    assert alert.observed == pytest.approx(2.4) and alert.threshold == pytest.approx(1.8)
    assert alert.details["baseline_usd_per_hour"].startswith("0.6") and alert.unit == "usd_per_hour"


def test_a_new_agents_spend_is_a_spike_only_above_the_minimum() -> None:
    rule = {"name": "spike", "kind": "cost_spike", "window": "1m", "baseline": "1h", "threshold": 3}
    alerts = engine({**rule, "min_usd_per_hour": 1.0})
    feed(alerts, usage(cost=0.01))  # 0.6 USD/h, no baseline
    assert tick(alerts, T0) == []
    feed(alerts, usage(cost=0.01))
    assert [s[0] for s in tick(alerts, T0)] == ["firing"]


def test_counts_of_dead_letters_open_circuits_and_unpriced_calls() -> None:
    alerts = engine(
        {"name": "dead_letters", "kind": "dead_letters", "window": "1m", "threshold": 3},
        {"name": "circuit_open", "kind": "circuit_open", "window": "1m"},
        {"name": "unpriced_model", "kind": "unpriced_model", "window": "1m"},
    )
    feed(alerts, audit(), audit(reason="circuit_open"), usage(cost=None, model="sim/free"), usage(cost=0.0))
    got = sorted(tick(alerts, T0))
    assert got == [("firing", "circuit_open:agent=triage", 1), ("firing", "unpriced_model:model=sim/free", 1)]
    feed(alerts, audit(reason="output_schema_violation"))
    assert tick(alerts, T0 + S) == [("firing", "dead_letters:agent=triage", 3)]


def test_observations_go_only_to_the_scopes_whose_rules_count_them() -> None:
    alerts = engine(CONSECUTIVE, {"name": "unpriced_model", "kind": "unpriced_model", "window": "1m"})
    assert alerts.scope_keys(audit()) == ["agent=triage"]
    assert alerts.scope_keys(usage(cost=0.01)) == []  # no agent rule counts calls, and it has a price
    assert alerts.scope_keys(usage(cost=None)) == ["model=sim/m"]
    assert alerts.scope_keys(audit(model=None)) == ["agent=triage"]


def test_an_observation_forwarded_again_is_not_counted_twice() -> None:
    alerts = engine(CONSECUTIVE)
    failures = [audit() for _ in range(4)]
    feed(alerts, *failures, *failures, failures[-1])
    assert alerts.scopes["agent=triage"].streak == 4
    assert tick(alerts, T0) == []


def firing_alert(rule: str = "consecutive_failures", **changes: Any) -> Alert:
    fields: dict[str, Any] = {
        "dedup_key": f"{rule}:agent=triage",
        "status": "firing",
        "rule": rule,
        "severity": "critical",
        "dimension": "agent",
        "scope": "triage",
        "observed": 5,
        "threshold": 5,
        "unit": "events",
        "window": "consecutive",
        "summary": "...",
        "runbook_url": "docs/runbooks.md#x",
        "at_ms": T0 - 3600 * S,
        "started_at_ms": T0 - 3600 * S,
        "agent": "triage",
        "sample_event_ids": ("old-1",),
    }
    return Alert(**{**fields, **changes})


def test_an_incident_taken_over_after_a_restart_does_not_fire_again_and_resolves_once() -> None:
    alerts = engine(CONSECUTIVE)
    assert alerts.restore(firing_alert(), now_ms=T0, partition=0)
    assert not alerts.restore(firing_alert("budget"), now_ms=T0, partition=0)  # not this engine's rule
    assert not alerts.restore(firing_alert(status="resolved"), now_ms=T0, partition=0)
    assert list(alerts.scopes) == ["agent=triage"]
    feed(alerts, *(audit(at=T0 + i) for i in range(6)))  # still failing after the restart
    assert tick(alerts, T0 + S) == []
    feed(alerts, audit("result", at=T0 + 2 * S))
    [resolved] = alerts.evaluate(T0 + 62 * S, partitions=[0])
    assert resolved.status == "resolved" and resolved.started_at_ms == T0 - 3600 * S
    assert resolved.sample_event_ids == ("old-1",)


def test_a_taken_over_incident_whose_condition_ended_meanwhile_resolves_after_the_clear_period() -> None:
    alerts = engine(CONSECUTIVE)
    alerts.restore(firing_alert(), now_ms=T0, partition=0)
    assert tick(alerts, T0 + 59 * S) == []
    assert [s[0] for s in tick(alerts, T0 + 60 * S)] == ["resolved"]


def test_state_is_bounded_samples_buckets_and_scopes() -> None:
    alerts = engine(CONSECUTIVE, {"name": "dl", "kind": "dead_letters", "window": "1m", "threshold": 1}, max_scopes=2)
    feed(alerts, *(audit(at=T0 + i * S) for i in range(300)))
    scope = alerts.scopes["agent=triage"]
    assert all(len(samples) == 5 for samples in scope.samples.values())
    tick(alerts, T0 + 300 * S)
    assert len(scope.series.buckets) <= 61  # the lookback (1 minute) and the current bucket
    feed(alerts, audit(agent="b"), audit(agent="c"))
    assert set(alerts.scopes) == {"agent=triage", "agent=b"} and alerts.refused == 1
    feed(alerts, audit("result", at=T0 + 301 * S, agent="b"))
    tick(alerts, T0 + 301 * S)
    tick(alerts, T0 + 1000 * S)  # b's incident resolves, then nothing is left to watch
    tick(alerts, T0 + 1001 * S)
    assert "agent=b" not in alerts.scopes


def test_only_owned_partitions_are_evaluated_and_revoked_ones_are_forgotten() -> None:
    alerts = engine(CONSECUTIVE)
    for obs in (audit() for _ in range(5)):
        alerts.observe("agent=triage", obs, partition=3)
    assert alerts.evaluate(T0, partitions=[0, 1]) == []
    assert len(alerts.evaluate(T0, partitions=[3])) == 1
    alerts.forget([3])
    assert alerts.scopes == {}


def test_events_answered_by_another_model_version_fire_their_rule() -> None:
    alerts = engine({"name": "model_version_changed", "kind": "model_version_changed", "window": "1m"})
    feed(alerts, audit("result"), audit("result", reason="model_version_changed"))
    assert tick(alerts, T0) == [("firing", "model_version_changed:agent=triage", 1)]
