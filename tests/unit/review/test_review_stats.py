from sample_review_items import T0_MS, decision, review_item

from streams.review.stats import QA_SAMPLE_RULE, ReviewFigures, format_wait_ms, review_stats, rule_key

MINUTE_MS = 60_000


def test_figures_per_agent_and_config_version_with_rates_and_queue_depth() -> None:
    items = [review_item(f"a{i}", created_at_ms=T0_MS + i) for i in range(10)]
    decisions = (
        [decision(items[i], "approve", after_ms=(i + 1) * MINUTE_MS) for i in range(5)]
        + [decision(items[5], "edit", after_ms=6 * MINUTE_MS), decision(items[6], "edit", after_ms=7 * MINUTE_MS)]
        + [decision(items[7], "reject", after_ms=8 * MINUTE_MS)]
    )
    [stats] = review_stats(items, decisions, now_ms=T0_MS + 30 * MINUTE_MS)
    total = stats.total
    assert (stats.agent, stats.config_version) == ("invoice", "c1")
    assert (total.items, total.decided, total.pending) == (10, 8, 2)
    assert (total.approved, total.edited, total.rejected) == (5, 2, 1)
    assert total.agreement_rate == 5 / 8
    assert total.edit_rate == 2 / 8
    assert total.rejection_rate == 1 / 8
    assert total.decision_quantile_ms(0.5) == 4 * MINUTE_MS
    assert total.decision_quantile_ms(0.95) == 8 * MINUTE_MS
    assert total.max_decision_ms == 8 * MINUTE_MS
    assert stats.oldest_pending_ms == 30 * MINUTE_MS - 8  # item a8 was created at T0 + 8 ms


def test_only_the_first_decision_on_an_item_counts() -> None:
    item = review_item("a1")
    [stats] = review_stats([item], [decision(item, "reject"), decision(item, "approve")], now_ms=T0_MS)
    assert (stats.total.rejected, stats.total.approved, stats.total.decided) == (1, 0, 1)


def test_split_by_config_version_route_and_rule() -> None:
    items = [
        review_item("r1", route="review", rule="large_total"),
        review_item("r2", route="review", rule="large_total"),
        review_item("f1", route="flag", rule="risky_category"),
        review_item("p1", rule=None, reason="model_refused"),
        review_item("n1", config_version="c2"),
    ]
    decisions = [decision(items[0], "approve"), decision(items[2], "edit"), decision(items[4], "reject")]
    old, new = review_stats(items, decisions, now_ms=T0_MS + MINUTE_MS)
    assert (old.config_version, new.config_version) == ("c1", "c2")
    assert {route: (f.items, f.decided) for route, f in old.by_route.items()} == {"review": (3, 1), "flag": (1, 1)}
    assert set(old.by_rule) == {"large_total", "risky_category", "(model_refused)"}
    assert old.by_rule["large_total"].agreement_rate == 1.0
    assert old.by_rule["risky_category"].edit_rate == 1.0
    assert old.by_rule["(model_refused)"].agreement_rate is None
    assert new.total.rejection_rate == 1.0


def test_qa_samples_count_with_the_rest_and_on_their_own() -> None:
    qa = [review_item(f"q{i}", rule=QA_SAMPLE_RULE, reason=QA_SAMPLE_RULE) for i in range(4)]
    routed = [review_item(f"r{i}") for i in range(4)]
    decisions = [decision(item, "approve") for item in qa[:3]] + [decision(qa[3], "edit")]
    decisions += [decision(item, "reject") for item in routed]
    [stats] = review_stats(qa + routed, decisions, now_ms=T0_MS)
    assert stats.qa is not None
    assert stats.qa.agreement_rate == 3 / 4
    assert stats.total.decided == 8
    assert stats.total.agreement_rate == 3 / 8


def test_no_qa_figure_without_qa_samples_and_a_qa_reason_without_a_rule_is_still_qa() -> None:
    [plain] = review_stats([review_item("r1")], [], now_ms=T0_MS)
    assert plain.qa is None
    assert rule_key(review_item("q1", rule=None, reason=QA_SAMPLE_RULE)) == QA_SAMPLE_RULE


def test_since_keeps_recent_items_and_a_decision_without_its_item_is_left_out() -> None:
    old = review_item("old", created_at_ms=T0_MS - 10 * MINUTE_MS)
    new = review_item("new", created_at_ms=T0_MS)
    gone = review_item("gone")
    [stats] = review_stats([old, new], [decision(old, "approve"), decision(gone, "approve")], now_ms=T0_MS,
                           since_ms=T0_MS - MINUTE_MS)  # fmt: skip
    assert (stats.total.items, stats.total.decided, stats.total.pending) == (1, 0, 1)


def test_nothing_decided_has_no_rates_or_times() -> None:
    figures = ReviewFigures(items=3)
    assert figures.pending == 3
    assert figures.agreement_rate is None
    assert figures.decision_quantile_ms(0.5) is None
    assert figures.max_decision_ms is None
    assert review_stats([], [], now_ms=T0_MS) == []


def test_the_percentile_is_the_nearest_rank_of_the_exact_times() -> None:
    figures = ReviewFigures(items=100, approved=100, decision_ms=tuple(range(1, 101)))
    assert figures.decision_quantile_ms(0.5) == 50
    assert figures.decision_quantile_ms(0.95) == 95
    assert figures.decision_quantile_ms(0.0) == 1
    assert figures.max_decision_ms == 100


def test_waits_read_at_a_glance() -> None:
    assert format_wait_ms(45_999) == "45s"
    assert format_wait_ms(12 * MINUTE_MS + 5_000) == "12m 05s"
    assert format_wait_ms(3 * 3_600_000 + 5 * MINUTE_MS) == "3h 05m"
    assert format_wait_ms(50 * 3_600_000) == "2d 02h"
