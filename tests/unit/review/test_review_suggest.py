import random
from collections.abc import Sequence

import pytest
from sample_review_items import decision, review_item

from streams.core.review_item import Decision, ReviewItem
from streams.review.suggest import (
    ThresholdRule,
    best_threshold,
    field_value,
    format_number,
    round_levels,
    suggest_thresholds,
)

RULE = ThresholdRule(name="large_total", field="total", above=500)


def routed(
    values_and_actions: Sequence[tuple[float, str]], *, rule: str = "large_total", prefix: str = "i"
) -> tuple[list[ReviewItem], list[Decision]]:
    items, decisions = [], []
    for n, (value, action) in enumerate(values_and_actions):
        item = review_item(f"{prefix}-{rule}-{n}", rule=rule, output={"total": value})
        items.append(item)
        if action != "pending":
            decisions.append(decision(item, action))  # type: ignore[arg-type]
    return items, decisions


def test_the_issue_example_rises_to_2000_on_98_percent_of_412() -> None:
    rng = random.Random(6)
    band = [(rng.uniform(500.01, 2000), "approve") for _ in range(404)]
    band += [(rng.uniform(500.01, 2000), "edit") for _ in range(8)]
    beyond = [(rng.uniform(2000.01, 6000), action) for action in ["approve", "reject"] * 100]
    items, decisions = routed(band + beyond)
    [suggestion] = suggest_thresholds("invoice", [RULE], items, decisions)
    assert (suggestion.current, suggestion.suggested, suggestion.reviews, suggestion.approved) == (500, 2000, 412, 404)
    assert suggestion.sentence() == (
        "invoice total threshold could rise from 500 to 2,000: 98% of 412 reviews in that band were approved unchanged"
    )


def spread(count: int, action: str, *, low: float = 600, high: float = 2_000) -> list[tuple[float, str]]:
    """``count`` values from ``low`` to ``high``, both included."""
    return [(low + (high - low) * n / (count - 1), action) for n in range(count)]


def test_too_few_reviews_give_no_suggestion_however_good() -> None:
    items, decisions = routed(spread(29, "approve") + [(2_500, "pending")] * 50)
    assert suggest_thresholds("invoice", [RULE], items, decisions) == []
    items, decisions = routed(spread(30, "approve"))
    [suggestion] = suggest_thresholds("invoice", [RULE], items, decisions)
    assert (suggestion.suggested, suggestion.reviews) == (2_000, 30)


def test_agreement_just_under_the_bar_gives_no_suggestion() -> None:
    items, decisions = routed([(700, "approve")] * 28 + [(1_000, "edit")] * 2)  # 93%
    assert suggest_thresholds("invoice", [RULE], items, decisions) == []
    items, decisions = routed([(700, "approve")] * 29 + [(1_000, "edit")] * 1)  # 96.7%
    assert [s.suggested for s in suggest_thresholds("invoice", [RULE], items, decisions)] == [1000]
    assert suggest_thresholds("invoice", [RULE], items, decisions, min_agreement=0.99) == []
    assert suggest_thresholds("invoice", [RULE], items, decisions, min_reviews=31) == []


def test_only_decided_items_of_the_rule_and_agent_with_a_number_count() -> None:
    good, good_decisions = routed([(1_000, "approve")] * 30)
    other_rule, other_decisions = routed([(1_000, "reject")] * 30, rule="risky_category")
    pending, _ = routed([(1_000, "pending")] * 30, prefix="p")
    odd = [review_item(f"odd{n}", output={"total": "1000"}) for n in range(20)]
    odd += [review_item(f"none{n}") for n in range(20)]
    elsewhere = [review_item(f"x{n}", agent="refunds", output={"total": 1_000}) for n in range(30)]
    rejected = [decision(item, "reject") for item in odd + elsewhere]
    items = good + other_rule + pending + odd + elsewhere
    [suggestion] = suggest_thresholds("invoice", [RULE], items, good_decisions + other_decisions + rejected)
    assert (suggestion.suggested, suggestion.reviews, suggestion.approved) == (500 + 500, 30, 30)


def test_values_at_or_below_the_threshold_and_a_higher_config_version_filter() -> None:
    items, decisions = routed([(500, "reject")] * 30 + [(1_000, "approve")] * 30)
    [suggestion] = suggest_thresholds("invoice", [RULE], items, decisions)
    assert suggestion.reviews == 30
    assert suggest_thresholds("invoice", [RULE], items, decisions, config_version="c9") == []


def test_a_dotted_field_and_fractional_thresholds() -> None:
    assert field_value('{"invoice": {"total": 12.5}}', "invoice.total") == 12.5
    assert field_value('{"invoice": {"total": true}}', "invoice.total") is None
    assert field_value('{"invoice": 3}', "invoice.total") is None
    assert field_value("not json", "total") is None
    observed = [(0.3, True)] * 40 + [(0.45, True)] * 40 + [(0.7, False)] * 40
    assert best_threshold(0.25, observed, min_reviews=30, min_agreement=0.95) == (0.5, 80, 80)
    rule = ThresholdRule(name="unsure", field="score", above=0.25)
    items = [review_item(f"s{n}", rule="unsure", output={"score": value}) for n, (value, _) in enumerate(observed)]
    decisions = [decision(item, "approve" if ok else "edit") for item, (_, ok) in zip(items, observed, strict=True)]
    [suggestion] = suggest_thresholds("invoice", [rule], items, decisions)
    assert suggestion.sentence().startswith("invoice score threshold could rise from 0.25 to 0.5: 100% of 80 ")


def test_round_levels_and_numbers() -> None:
    assert list(round_levels(500, 7000)) == [1000, 2000, 5000]
    assert list(round_levels(500, 999)) == []
    assert list(round_levels(0.25, 3)) == [0.5, 1, 2]
    assert list(round_levels(0, 0.002))[:3] == [1e-6, 2e-6, 5e-6]
    assert list(round_levels(10, -5)) == []
    assert format_number(2000.0) == "2,000"
    assert format_number(1234567.5) == "1,234,567.5"
    assert format_number(0.2) == "0.2"


def _levels_by_hand(low: float, high: float) -> list[float]:
    levels = [float(f"{step}e{power}") for power in range(-6, 13) for step in (1, 2, 5)]
    return [level for level in levels if low < level <= high]


def _passes(observed: list[tuple[float, bool]], low: float, level: float, min_reviews: int, bar: float) -> bool:
    band = [ok for value, ok in observed if low < value <= level]
    return len(band) >= min_reviews and sum(band) / len(band) >= bar


@pytest.mark.parametrize("seed", range(300))
def test_a_suggestion_is_exactly_the_highest_level_whose_band_passes_both_bars(seed: int) -> None:
    """Property, over random data: a suggested band always has enough reviews at the agreement bar, no
    higher level's band does, and where no level's band does there is no suggestion."""
    rng = random.Random(seed)
    current = rng.choice([0.5, 10, 250, 500, 1_000])
    min_reviews = rng.choice([1, 5, 30])
    bar = rng.choice([0.8, 0.95, 1.0])
    observed = []
    for _ in range(rng.randrange(0, 120)):
        value = current * rng.choice([0.5, 1, 1.5, 2, 3, 5, 10, 40]) * rng.uniform(0.9, 1.1)
        observed.append((value, rng.random() < rng.choice([0.5, 0.9, 0.97, 1.0])))
    found = best_threshold(current, observed, min_reviews=min_reviews, min_agreement=bar)
    high = max((value for value, _ in observed), default=0.0)
    passing = [level for level in _levels_by_hand(current, high) if _passes(observed, current, level, min_reviews, bar)]
    if not passing:
        assert found is None
        return
    assert found is not None
    level, reviews, approved = found
    assert level == pytest.approx(max(passing))
    band = [ok for value, ok in observed if current < value <= level]
    assert (reviews, approved) == (len(band), sum(band))
    assert reviews >= min_reviews
    assert approved / reviews >= bar


def test_no_level_beyond_the_values_seen() -> None:
    """900 approved reviews all at 900: no round level in (500, 900], and 1,000 would rest on no data."""
    items, decisions = routed([(900, "approve")] * 900)
    assert suggest_thresholds("invoice", [RULE], items, decisions) == []
