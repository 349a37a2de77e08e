"""The evaluation gate: the stricter of the baseline's and the candidate's thresholds, and why figures fail."""

from __future__ import annotations

import dataclasses

from streams.agent.definition import EvaluationPolicy
from streams.agent.evaluation import EvalFigures
from streams.eval.thresholds import failures, strictest

GOOD = EvalFigures(
    events=10, valid=9, invalid=1, errors=0, schema_valid_rate=0.9, reasks_per_event=0.1, agreement=0.8,
    cost_usd=0.05, unpriced_calls=0, latency_mean_ms=100.0, latency_p95_ms=200.0,
)  # fmt: skip


def test_the_strictest_of_each_threshold_applies() -> None:
    baseline = EvaluationPolicy(min_schema_valid_rate=0.95, max_cost_per_event_usd=0.01)
    candidate = EvaluationPolicy(min_schema_valid_rate=0.5, min_agreement=0.7, max_cost_per_event_usd=0.02)
    assert strictest(baseline, candidate) == EvaluationPolicy(
        min_schema_valid_rate=0.95, min_agreement=0.7, max_cost_per_event_usd=0.01
    )
    assert strictest(None, None) == EvaluationPolicy()


def test_figures_that_meet_every_threshold_exactly_pass() -> None:
    policy = EvaluationPolicy(min_schema_valid_rate=0.9, min_agreement=0.8, max_cost_per_event_usd=0.005,
                              max_reasks_per_event=0.1, max_error_rate=0.0)  # fmt: skip
    assert failures(policy, GOOD) == []
    assert failures(EvaluationPolicy(), GOOD) == []


def test_each_threshold_missed_is_a_reason() -> None:
    policy = EvaluationPolicy(min_schema_valid_rate=0.95, min_agreement=0.9, max_cost_per_event_usd=0.001,
                              max_reasks_per_event=0.05, max_error_rate=0.0)  # fmt: skip
    bad = dataclasses.replace(GOOD, errors=1)
    reasons = failures(policy, bad)
    assert len(reasons) == 5
    assert reasons[0] == "schema-valid rate 90.0% is below the minimum 95.0%"
    assert "agreement 80.0% is below the minimum 90.0%" in reasons
    assert "cost per event (USD) 0.005 is above the maximum 0.001" in reasons


def test_no_events_never_pass_and_what_cannot_be_measured_fails_its_threshold() -> None:
    assert failures(EvaluationPolicy(), dataclasses.replace(GOOD, events=0)) == ["no events were evaluated"]
    unmeasured = dataclasses.replace(GOOD, agreement=None, unpriced_calls=3)
    reasons = failures(EvaluationPolicy(min_agreement=0.5, max_cost_per_event_usd=1.0), unmeasured)
    assert reasons[0].startswith("agreement: not measured") and "3 calls have no price" in reasons[1]
