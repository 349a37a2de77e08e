"""The evaluation gate: the thresholds of the agent's ``evaluation`` block (streams/agent/definition.py),
and why a candidate's figures fail them.

Both the baseline's block and the candidate's apply, the stricter of each threshold: a candidate
cannot pass by loosening its own, and one that adds a threshold is held to it. An evaluation with no
events never passes, and a cost threshold is not met by calls that have no price.
"""

from __future__ import annotations

from streams.agent.definition import EvaluationPolicy
from streams.agent.evaluation import EvalFigures

_SLACK = 1e-12  # a figure equal to its threshold meets it, whatever the float rounding
_MINIMA = ("min_schema_valid_rate", "min_agreement")
_MAXIMA = ("max_cost_per_event_usd", "max_reasks_per_event", "max_error_rate")


def strictest(*policies: EvaluationPolicy | None) -> EvaluationPolicy:
    """One policy with, for each threshold, the strictest any of ``policies`` sets."""
    given = [p for p in policies if p is not None]
    fields: dict[str, float] = {}
    for name in (*_MINIMA, *_MAXIMA):
        values = [v for v in (getattr(p, name) for p in given) if v is not None]
        if values:
            fields[name] = max(values) if name in _MINIMA else min(values)
    return EvaluationPolicy(**fields)


def failures(policy: EvaluationPolicy, figures: EvalFigures) -> list[str]:
    """Why ``figures`` fail ``policy``, one sentence each; empty: they pass."""
    if figures.events == 0:
        return ["no events were evaluated"]
    reasons: list[str] = []
    _at_least(reasons, "schema-valid rate", figures.schema_valid_rate, policy.min_schema_valid_rate, percent=True)
    _at_least(reasons, "agreement", figures.agreement, policy.min_agreement, percent=True)
    if policy.max_cost_per_event_usd is not None and figures.unpriced_calls:
        reasons.append(f"cost per event unknown: {figures.unpriced_calls} calls have no price in the pricing file")
    else:
        _at_most(reasons, "cost per event (USD)", figures.cost_per_event_usd, policy.max_cost_per_event_usd)
    _at_most(reasons, "re-asks per event", figures.reasks_per_event, policy.max_reasks_per_event)
    _at_most(reasons, "error rate", figures.error_rate, policy.max_error_rate, percent=True)
    return reasons


def _at_least(reasons: list[str], what: str, value: float | None, minimum: float | None, *, percent: bool) -> None:
    if minimum is None:
        return
    if value is None:
        reasons.append(f"{what}: not measured (nothing to measure it on), needs at least {_shown(minimum, percent)}")
    elif value < minimum - _SLACK:
        reasons.append(f"{what} {_shown(value, percent)} is below the minimum {_shown(minimum, percent)}")


def _at_most(
    reasons: list[str], what: str, value: float | None, maximum: float | None, *, percent: bool = False
) -> None:
    if maximum is None or value is None:
        return
    if value > maximum + _SLACK:
        reasons.append(f"{what} {_shown(value, percent)} is above the maximum {_shown(maximum, percent)}")


def _shown(value: float, percent: bool) -> str:
    return f"{value:.1%}" if percent else f"{value:.6g}"
