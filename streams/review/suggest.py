"""Threshold suggestions: when reviewers approve nearly everything a numeric rule sends them just above its
threshold, the threshold could move up and let those outputs through on their own.

Pure. For a rule "output field above X goes to review", the decided items the rule routed are placed by
their field value. A candidate new threshold T is a round level (1, 2, 5 times a power of ten) above X
and no higher than the largest value seen, so that every suggestion rests on data reaching it. The
suggestion is the highest T whose band (X, T] holds at least ``min_reviews`` decided items of which at
least ``min_agreement`` were approved unchanged; no candidate passing both bars, no suggestion. The
figures are for the whole band, as the sentence says. Lowering a threshold is not suggested: the
outputs below it are not reviewed (QA samples aside), so the data to argue for it is thin.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import orjson

from streams.core.review_item import Decision, ReviewItem
from streams.review.stats import first_decisions

MIN_REVIEWS = 30
MIN_AGREEMENT = 0.95
_LEVEL_STEPS = (1, 2, 5)
_LOWEST_EXPONENT = -6  # a threshold at or below 0 starts its levels here


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A handoff rule "``field`` of the output above ``above`` goes to review", as the agent declares it
    (``handoff.rules: [{name, route: review, field, above}]``). ``field`` may be a dotted path."""

    name: str
    field: str
    above: float


@dataclass(frozen=True, slots=True)
class ThresholdSuggestion:
    agent: str
    rule: str
    field: str
    current: float
    suggested: float
    reviews: int  # decided items in the band (current, suggested]
    approved: int  # of those, approved unchanged

    def sentence(self) -> str:
        """ "invoice total threshold could rise from 500 to 2,000: 98% of 412 reviews in that band were
        approved unchanged" (the percentage rounded down, so it never overstates the bar)."""
        percent = 100 * self.approved // self.reviews
        return (
            f"{self.agent} {self.field} threshold could rise from {format_number(self.current)} to "
            f"{format_number(self.suggested)}: {percent}% of {self.reviews:,} reviews in that band were "
            "approved unchanged"
        )


def suggest_thresholds(
    agent: str,
    rules: Iterable[ThresholdRule],
    items: Iterable[ReviewItem],
    decisions: Iterable[Decision],
    *,
    config_version: str | None = None,
    min_reviews: int = MIN_REVIEWS,
    min_agreement: float = MIN_AGREEMENT,
) -> list[ThresholdSuggestion]:
    """A suggestion per rule of ``agent`` the decided items support (``config_version``: only its items)."""
    decided = first_decisions(decisions)
    mine = [item for item in items if item.agent == agent and config_version in (None, item.config_version)]
    suggestions = []
    for rule in rules:
        observed = list(_band_values(rule, mine, decided))
        found = best_threshold(rule.above, observed, min_reviews=min_reviews, min_agreement=min_agreement)
        if found is not None:
            suggested, reviews, approved = found
            suggestions.append(
                ThresholdSuggestion(agent, rule.name, rule.field, rule.above, suggested, reviews, approved)
            )
    return suggestions


def best_threshold(
    current: float, observed: list[tuple[float, bool]], *, min_reviews: int, min_agreement: float
) -> tuple[float, int, int] | None:
    """(T, reviews, approved) for the highest round level T whose band (current, T] passes both bars.
    ``observed``: (field value, approved unchanged) of each decided item the rule routed."""
    above = sorted((value, ok) for value, ok in observed if value > current)
    if not above:
        return None
    values = [value for value, _ in above]
    approved_before = [0]  # approved among the first i items
    for _, ok in above:
        approved_before.append(approved_before[-1] + ok)
    best = None
    for level in round_levels(current, values[-1]):
        reviews = bisect_right(values, level)
        approved = approved_before[reviews]
        if reviews >= min_reviews and reviews and approved / reviews >= min_agreement:
            best = (level, reviews, approved)
    return best


def round_levels(low: float, high: float) -> Iterator[float]:
    """1-2-5 levels L with low < L <= high, ascending (none when high <= 0)."""
    if high <= 0 or high <= low:
        return
    top = math.floor(math.log10(high))
    exponent = math.floor(math.log10(low)) if low > 0 else min(_LOWEST_EXPONENT, top)
    for power in range(exponent, top + 1):
        for step in _LEVEL_STEPS:
            level = float(Decimal(step).scaleb(power))  # exact decimal: 0.2, not 0.20000000000000001
            if low < level <= high:
                yield level


def format_number(value: float) -> str:
    """Thousands separators; no ``.0`` on whole numbers."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.10g}"


def field_value(output_json: str | None, path: str) -> float | None:
    """The number at ``path`` (dotted) of the output, or None when it is missing or not a number."""
    if output_json is None:
        return None
    try:
        value: object = orjson.loads(output_json)
    except orjson.JSONDecodeError:
        return None
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _band_values(
    rule: ThresholdRule, items: list[ReviewItem], decided: dict[str, Decision]
) -> Iterator[tuple[float, bool]]:
    for item in items:
        decision = decided.get(item.item_id)
        if item.rule != rule.name or decision is None:
            continue
        value = field_value(item.output_json, rule.field)
        if value is not None and math.isfinite(value):
            yield value, decision.action == "approve"
