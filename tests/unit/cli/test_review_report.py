from sample_review_items import T0_MS, decision, review_item

from streams.cli.review_report import format_stats, review_stats_report
from streams.review.stats import QA_SAMPLE_RULE, review_stats
from streams.review.suggest import ThresholdRule

MINUTE_MS = 60_000
RULE = ThresholdRule(name="large_total", field="total", above=500)


def invoices() -> tuple[list, list]:  # type: ignore[type-arg]
    items = [review_item(f"r{n}", output={"total": 600 + n * 40}) for n in range(40)]  # 600 .. 2,160
    items += [review_item(f"q{n}", rule=QA_SAMPLE_RULE, reason=QA_SAMPLE_RULE, route="review") for n in range(4)]
    items += [review_item(f"f{n}", route="flag", rule="risky_category") for n in range(2)]
    items.append(review_item("waiting", created_at_ms=T0_MS - 90 * MINUTE_MS, output={"total": 9_000}))
    decisions = [
        decision(item, "edit" if n == 10 else "approve", after_ms=(n + 1) * MINUTE_MS)
        for n, item in enumerate(items[:40])
    ]  # r10 (1,000) edited
    decisions += [decision(item, "approve") for item in items[40:43]] + [decision(items[43], "reject")]
    return items, decisions


def test_the_table_has_a_row_per_agent_config_route_and_rule_and_the_qa_estimate() -> None:
    items, decisions = invoices()
    text = format_stats(review_stats(items, decisions, now_ms=T0_MS))
    lines = text.splitlines()
    assert lines[0].split() == [
        "agent", "config", "group", "items", "decided", "pending", "agree", "edit", "reject", "p50", "p95", "max",
    ]  # fmt: skip
    rows = {tuple(line.split()[:4]): line.split()[4:] for line in lines[1:] if line.startswith("invoice ")}
    assert rows["invoice", "c1", "all", "47"] == ["44", "3", "95%", "2%", "2%", "18m00s", "38m00s", "40m00s"]
    assert rows["invoice", "c1", "route", "flag"][:2] == ["2", "0"]
    assert rows["invoice", "c1", "rule", "large_total"][:6] == ["41", "40", "1", "98%", "2%", "0%"]
    assert "oldest pending: invoice c1: 1h 30m" in lines
    assert (
        "QA sample (unbiased agreement of autonomous output): invoice c1: 75% of 4 sampled results approved unchanged"
        in lines
    )


def test_the_report_ends_with_the_suggestions_the_data_supports() -> None:
    items, decisions = invoices()
    text = review_stats_report(items, decisions, now_ms=T0_MS, threshold_rules={"invoice": [RULE]})
    assert text.splitlines()[-1] == (
        "suggestion: invoice total threshold could rise from 500 to 2,000: 97% of 36 reviews in that band were "
        "approved unchanged"
    )
    quiet = review_stats_report(items, decisions, now_ms=T0_MS, threshold_rules={"invoice": [RULE]}, min_reviews=37)
    assert "suggestion" not in quiet
    other_version = review_stats_report(
        items, decisions, now_ms=T0_MS, threshold_rules={"invoice": [RULE]}, config_versions={"invoice": "c2"}
    )
    assert "suggestion" not in other_version


def test_without_splits_and_without_items() -> None:
    items, decisions = invoices()
    text = review_stats_report(items, decisions, now_ms=T0_MS, threshold_rules={}, splits=False)
    assert [line.split()[2] for line in text.splitlines()[1:] if line.startswith("invoice ")] == ["all"]
    assert review_stats_report([], [], now_ms=T0_MS, threshold_rules={"invoice": [RULE]}) == "no review items"
    later = review_stats_report(items, decisions, now_ms=T0_MS, threshold_rules={}, since_ms=T0_MS + 1)
    assert later == "no review items"
