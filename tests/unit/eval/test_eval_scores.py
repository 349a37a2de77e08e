"""How an event ends in an evaluation, and the figures of a version: valid rate, re-asks, agreement,
cost and latency."""

from __future__ import annotations

import pytest

from streams.core.domain import Attempt, DeadLetter, Failure, Result, RetryLater, Review, SourceRecord, Stage, Trace
from streams.eval.scores import EventRun, agreement_by_field, event_run, percentile, same, score

SOURCE = SourceRecord("keel.eval", 0, 0, None, b"k", b"")
FIELDS = ("category", "priority", "summary")


def trace(*purposes: str, total_ms: float = 10.0) -> Trace:
    attempts = tuple(Attempt("sim", "m", n, 0, 0.01, 10, 5, None, "ok", purpose) for n, purpose in enumerate(purposes))
    return Trace(source=SOURCE, received_at_ms=0, event=None, prompt_hash=None, attempts=attempts, total_ms=total_ms)


def usage(*costs: float | None) -> list[dict[str, object]]:
    return [{"cost_usd": cost} for cost in costs]


def run(ending: str, output: dict[str, object] | None = None, *, reasks: int = 0, cost: float = 0.0,
        latency_ms: float = 10.0) -> EventRun:  # fmt: skip
    return EventRun("e", ending, ending, output, reasks, cost, 0, latency_ms)  # type: ignore[arg-type]


def test_results_and_review_items_with_output_are_valid_and_keep_their_output() -> None:
    result = Result(trace("initial", "reask"), {"category": "bug"}, '{"category": "bug"}', "v1")
    ended = event_run(result, usage(0.25, 0.5))
    assert (ended.ending, ended.output, ended.reasks, ended.cost_usd) == ("valid", {"category": "bug"}, 1, 0.75)
    review = Review(trace("initial"), "handoff_rule", "held", (), output_json='{"category": "privacy"}')
    assert event_run(review, usage(0.1)).ending == "valid"


@pytest.mark.parametrize(
    ("stage", "reason", "ending"),
    [
        (Stage.PARSE, "output_not_json", "invalid"),
        (Stage.VALIDATE, "output_schema_violation", "invalid"),
        (Stage.MODEL, "output_truncated", "invalid"),
        (Stage.MODEL, "provider_5xx", "error"),
        (Stage.MODEL, "deadline_exceeded", "error"),
    ],
)
def test_dead_letters_are_invalid_only_for_output_that_did_not_parse_or_validate(
    stage: Stage, reason: str, ending: str
) -> None:
    dead = DeadLetter(trace("initial"), Failure(stage, "E", reason, "m"))
    ended = event_run(dead, usage(0.1))
    assert ended.ending == ending and ended.ended == f"dead_letter {reason}" and ended.output is None


def test_a_review_without_output_and_a_transient_failure_are_errors_and_unpriced_calls_are_counted() -> None:
    review = Review(trace("initial"), "model_refused", "refused", ())
    later = RetryLater(trace("initial", "retry"), Failure(Stage.MODEL, "E", "provider_5xx", "m"), 1)
    assert event_run(review, usage(None)).unpriced_calls == 1
    assert {event_run(review, usage(None)).ending, event_run(later, usage(0.1, 0.1)).ending} == {"error"}


def test_fields_agree_ignoring_case_whitespace_and_float_noise_but_not_types() -> None:
    assert same("Billing ", "billing") and same("two  words", "two words")
    assert same(0.1 + 0.2, 0.3) and same(None, None)
    assert not same(1, True) and not same("1", 1) and not same(0.5, 0.6)


def test_agreement_is_per_field_over_the_events_with_an_expectation_and_no_output_disagrees() -> None:
    runs = [
        run("valid", {"category": "bug", "priority": "low", "summary": "x"}),
        run("valid", {"category": "bug", "priority": "high", "summary": "y"}),
        run("invalid"),
        run("valid", {"category": "other", "priority": "low", "summary": "z"}),
    ]
    expected = [{"category": "bug", "priority": "low", "summary": "x"}, {"category": "bug", "priority": "low"},
                {"category": "bug"}, None]  # fmt: skip
    by_field = agreement_by_field(FIELDS, runs, expected)
    assert by_field == {"category": pytest.approx(2 / 3), "priority": pytest.approx(1 / 3),
                        "summary": pytest.approx(1 / 3)}  # fmt: skip
    assert agreement_by_field(FIELDS, runs, [None] * 4) == {}


def test_the_figures_add_up() -> None:
    runs = [run("valid", {"category": "bug"}, reasks=1, cost=0.25, latency_ms=10.0),
            run("valid", {"category": "bug"}, cost=0.25, latency_ms=30.0),
            run("invalid", cost=0.5, latency_ms=20.0), run("error", latency_ms=100.0)]  # fmt: skip
    scored = score(("category",), runs, [{"category": "bug"}] * 4)
    f = scored.figures
    assert (f.events, f.valid, f.invalid, f.errors) == (4, 2, 1, 1)
    assert f.schema_valid_rate == pytest.approx(2 / 3) and f.reasks_per_event == 0.25
    assert f.agreement == 0.5 and scored.fields == {"category": 0.5}
    assert f.cost_usd == 1.0 and f.cost_per_event_usd == 0.25 and f.error_rate == 0.25
    assert f.latency_mean_ms == 40.0 and f.latency_p95_ms == 100.0


def test_no_runs_measure_nothing() -> None:
    f = score(FIELDS, [], []).figures
    assert (f.events, f.schema_valid_rate, f.agreement, f.latency_p95_ms, f.cost_per_event_usd) == (0, None, None,
                                                                                                   None, None)  # fmt: skip


def test_percentile_is_nearest_rank() -> None:
    assert percentile([1.0], 0.95) == 1.0
    assert percentile([float(v) for v in range(1, 21)], 0.95) == 19.0
    assert percentile([], 0.5) is None
