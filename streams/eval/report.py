"""The side-by-side report of an evaluation run, as text or JSON, and the ``Evaluation`` it stores."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from streams.agent.definition import EvaluationPolicy
from streams.agent.evaluation import EvalFigures, Evaluation
from streams.agent.versions import Change
from streams.eval.scores import Scored
from streams.eval.thresholds import failures


@dataclass(frozen=True, slots=True)
class Side:
    version_id: str
    config_version: str  # as the usage records' keel.config_version header has it
    scored: Scored


@dataclass(frozen=True, slots=True)
class Report:
    evaluation: Evaluation
    baseline: Side
    candidate: Side
    agreement_with: str  # what the outputs were compared with: recorded, approved or expected output
    policy: EvaluationPolicy


def judged(
    baseline: Side, candidate: Side, *, agent: str, inputs: str, run_id: str, policy: EvaluationPolicy, change: Change,
    agreement_with: str,
) -> Report:  # fmt: skip
    """The report of a run, and its verdict: the candidate's figures against ``policy``."""
    reasons = failures(policy, candidate.scored.figures)
    evaluation = Evaluation(
        agent, candidate.version_id, baseline.version_id, inputs, run_id, not reasons, tuple(reasons),
        candidate.scored.figures, baseline.scored.figures, change.author, change.at_ms, change.message,
    )  # fmt: skip
    return Report(evaluation, baseline, candidate, agreement_with, policy)


Row = tuple[str, Callable[[EvalFigures], str]]


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.8f}"


ROWS: tuple[Row, ...] = (
    ("events", lambda f: str(f.events)),
    ("valid / invalid / errors", lambda f: f"{f.valid} / {f.invalid} / {f.errors}"),
    ("schema-valid rate", lambda f: _rate(f.schema_valid_rate)),
    ("re-asks per event", lambda f: f"{f.reasks_per_event:.2f}"),
    ("cost USD", lambda f: _usd(f.cost_usd) + ("*" if f.unpriced_calls else "")),
    ("cost USD per event", lambda f: _usd(f.cost_per_event_usd)),
    ("latency ms per event, mean", lambda f: _ms(f.latency_mean_ms)),
    ("latency ms per event, p95", lambda f: _ms(f.latency_p95_ms)),
)


def text(report: Report) -> str:
    e, base, cand = report.evaluation, report.baseline, report.candidate
    width = max(24, len(base.version_id) + 11, len(cand.version_id) + 12)
    lines = [
        f"keel eval {e.agent}: {e.inputs}, run {e.run_id}",
        f"{'':<30} {'baseline ' + base.version_id:>{width}} {'candidate ' + cand.version_id:>{width}}",
    ]
    for label, shown in ROWS:
        lines.append(f"{label:<30} {shown(base.scored.figures):>{width}} {shown(cand.scored.figures):>{width}}")
    agreement = f"agreement with {report.agreement_with}"
    lines.append(f"{agreement:<30} {_rate(base.scored.figures.agreement):>{width}} "
                 f"{_rate(cand.scored.figures.agreement):>{width}}")  # fmt: skip
    for name in base.scored.fields or cand.scored.fields:
        lines.append(f"{'  ' + name:<30} {_rate(base.scored.fields.get(name)):>{width}} "
                     f"{_rate(cand.scored.fields.get(name)):>{width}}")  # fmt: skip
    if base.scored.figures.unpriced_calls or cand.scored.figures.unpriced_calls:
        lines.append("* includes calls to a model with no price: their cost is not counted")
    lines.append("PASS" if e.passed else "FAIL: " + "; ".join(e.reasons))
    return "\n".join(lines)


def as_json(report: Report) -> str:
    e = report.evaluation

    def side(s: Side) -> dict[str, Any]:
        figures = s.scored.figures
        return {
            "version": s.version_id, "config_version": s.config_version, **asdict(figures),
            "cost_per_event_usd": figures.cost_per_event_usd, "agreement_by_field": s.scored.fields,
        }  # fmt: skip

    document = {
        "agent": e.agent, "inputs": e.inputs, "run_id": e.run_id, "agreement_with": report.agreement_with,
        "baseline": side(report.baseline), "candidate": side(report.candidate), "passed": e.passed,
        "reasons": list(e.reasons), "thresholds": report.policy.model_dump(exclude_none=True),
    }  # fmt: skip
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
