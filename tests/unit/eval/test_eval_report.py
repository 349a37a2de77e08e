"""The side-by-side report: both versions' figures in one table, the verdict, and its JSON form."""

from __future__ import annotations

import dataclasses

import orjson

from streams.agent.definition import EvaluationPolicy
from streams.agent.evaluation import EvalFigures
from streams.agent.versions import Change
from streams.eval.report import Side, as_json, judged, text
from streams.eval.scores import Scored

FIGURES = EvalFigures(
    events=12, valid=11, invalid=1, errors=0, schema_valid_rate=11 / 12, reasks_per_event=0.25, agreement=0.5,
    cost_usd=0.0012345678, unpriced_calls=0, latency_mean_ms=12.4, latency_p95_ms=30.0,
)  # fmt: skip
BASE = Side("aaaaaaaaaaaa", "aaaaaaaaaaaa-sim", Scored(dataclasses.replace(FIGURES, agreement=1.0), {"category": 1.0}))
CAND = Side("bbbbbbbbbbbb", "bbbbbbbbbbbb-sim", Scored(FIGURES, {"category": 0.5}))


def report(policy: EvaluationPolicy) -> object:
    return judged(BASE, CAND, agent="support_triage", inputs="since 1h", run_id="r1", policy=policy,
                  change=Change("ana", 5, "why"), agreement_with="recorded output")  # fmt: skip


def test_the_table_puts_both_versions_side_by_side_and_ends_with_the_verdict() -> None:
    shown = text(report(EvaluationPolicy(min_agreement=0.4)))  # type: ignore[arg-type]
    lines = shown.splitlines()
    assert lines[0] == "keel eval support_triage: since 1h, run r1"
    assert "baseline aaaaaaaaaaaa" in lines[1] and "candidate bbbbbbbbbbbb" in lines[1]
    rows = {line[:30].strip(): line[30:].split() for line in lines[2:-1]}
    assert rows["events"] == ["12", "12"] and rows["schema-valid rate"] == ["91.7%", "91.7%"]
    assert rows["cost USD"] == ["0.00123457", "0.00123457"] and rows["re-asks per event"] == ["0.25", "0.25"]
    assert rows["agreement with recorded output"] == ["100.0%", "50.0%"] and rows["category"] == ["100.0%", "50.0%"]
    assert lines[-1] == "PASS"


def test_a_failing_candidate_says_why_and_the_evaluation_keeps_it() -> None:
    failed = report(EvaluationPolicy(min_agreement=0.9))
    assert text(failed).splitlines()[-1] == "FAIL: agreement 50.0% is below the minimum 90.0%"  # type: ignore[arg-type]
    evaluation = failed.evaluation  # type: ignore[attr-defined]
    assert (evaluation.version_id, evaluation.baseline, evaluation.passed, evaluation.author) == (
        "bbbbbbbbbbbb", "aaaaaaaaaaaa", False, "ana")  # fmt: skip
    document = orjson.loads(as_json(failed))  # type: ignore[arg-type]
    assert document["candidate"]["cost_usd"] == FIGURES.cost_usd and document["candidate"]["config_version"] == (
        "bbbbbbbbbbbb-sim")  # fmt: skip
    assert document["thresholds"] == {"min_agreement": 0.9} and document["passed"] is False
