"""The figures of one version over an evaluation run: how each event ended, and the sums.

An event ends *valid* (a result, or a review item with an output), *invalid* (a dead letter because
the output did not parse or validate) or as an *error* (anything else: the provider failed, the
deadline passed, a transient failure that would have gone to a retry tier). Agreement compares the
output's top-level fields with the expected ones, for the events that have an expectation: an event
with no output disagrees on every field.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from streams.agent.evaluation import EvalFigures
from streams.core.domain import DeadLetter, Outcome, Result, Review, Stage, outcome_name
from streams.cost.usage_windows import VALIDATION_REASONS

Ending = Literal["valid", "invalid", "error"]
_INVALID_STAGES = (Stage.PARSE, Stage.VALIDATE)


@dataclass(frozen=True, slots=True)
class EventRun:
    """One event through one version."""

    event_id: str
    ending: Ending
    ended: str  # the outcome, and a dead letter's reason: "result", "dead_letter output_not_json"
    output: dict[str, Any] | None
    reasks: int
    cost_usd: float  # the usage records' cost
    unpriced_calls: int
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Scored:
    figures: EvalFigures
    fields: dict[str, float]  # agreement by top-level field; empty: nothing expected


def event_run(outcome: Outcome, usage: Sequence[dict[str, Any]]) -> EventRun:
    """``usage``: the usage values written for the event's attempts (streams/contracts/emit.py)."""
    trace = outcome.trace
    ending: Ending = "error"
    output: dict[str, Any] | None = None
    ended = outcome_name(outcome)
    if isinstance(outcome, Result | Review) and outcome.output_json is not None:
        ending, output = "valid", _object(outcome.output_json)
    elif isinstance(outcome, DeadLetter):
        failure = outcome.failure
        ended = f"{ended} {failure.reason}"
        if failure.stage in _INVALID_STAGES or failure.reason in VALIDATION_REASONS:
            ending = "invalid"
    costs = [value["cost_usd"] for value in usage]
    return EventRun(
        event_id=trace.event_id,
        ending=ending,
        ended=ended,
        output=output,
        reasks=sum(1 for attempt in trace.new_attempts if attempt.purpose == "reask"),
        cost_usd=math.fsum(cost for cost in costs if cost is not None),
        unpriced_calls=sum(1 for cost in costs if cost is None),
        latency_ms=trace.total_ms,
    )


def same(expected: Any, actual: Any) -> bool:
    """Field equality as a reader means it: numbers within float noise, text ignoring case and runs of
    whitespace, anything else exactly."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, str) and isinstance(actual, str):
        return " ".join(expected.split()).casefold() == " ".join(actual.split()).casefold()
    return bool(expected == actual)


def agreement_by_field(
    fields: Sequence[str], runs: Sequence[EventRun], expected: Sequence[dict[str, Any] | None]
) -> dict[str, float]:
    """The share of events with an expectation whose output has each field equal to the expected one."""
    judged = [(run, want) for run, want in zip(runs, expected, strict=True) if want is not None]
    if not judged:
        return {}
    return {
        name: sum(1 for run, want in judged if run.output is not None and same(want.get(name), run.output.get(name)))
        / len(judged)
        for name in fields
    }


def score(fields: Sequence[str], runs: Sequence[EventRun], expected: Sequence[dict[str, Any] | None]) -> Scored:
    """``fields``: the output schema's top-level field names; ``expected``: per run, in order."""
    by_field = agreement_by_field(fields, runs, expected)
    valid = sum(1 for run in runs if run.ending == "valid")
    invalid = sum(1 for run in runs if run.ending == "invalid")
    latencies = sorted(run.latency_ms for run in runs)
    figures = EvalFigures(
        events=len(runs),
        valid=valid,
        invalid=invalid,
        errors=len(runs) - valid - invalid,
        schema_valid_rate=valid / (valid + invalid) if valid + invalid else None,
        reasks_per_event=sum(run.reasks for run in runs) / len(runs) if runs else 0.0,
        agreement=math.fsum(by_field.values()) / len(by_field) if by_field else None,
        cost_usd=math.fsum(run.cost_usd for run in runs),
        unpriced_calls=sum(run.unpriced_calls for run in runs),
        latency_mean_ms=math.fsum(latencies) / len(latencies) if latencies else None,
        latency_p95_ms=percentile(latencies, 0.95),
    )
    return Scored(figures, by_field)


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of values sorted ascending; None: no values."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _object(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
