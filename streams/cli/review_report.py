"""`keel review stats`: the measured-handoff figures as a text table, with threshold suggestions under it.

Pure: ``review_stats_report`` takes the items and decisions as arguments, so the command only has to read
``<agent>.review`` and ``keel.review.decisions`` and pass them in (and tests need no broker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from streams.core.review_item import Decision, ReviewItem
from streams.review.stats import AgentReviewStats, ReviewFigures, format_wait_ms, review_stats
from streams.review.suggest import MIN_AGREEMENT, MIN_REVIEWS, ThresholdRule, ThresholdSuggestion, suggest_thresholds

_HEADER = (
    f"{'agent':<24} {'config':<14} {'group':<24} {'items':>7} {'decided':>7} {'pending':>7} {'agree':>6} "
    f"{'edit':>6} {'reject':>6} {'p50':>8} {'p95':>8} {'max':>8}"
)


def review_stats_report(
    items: Iterable[ReviewItem],
    decisions: Iterable[Decision],
    *,
    now_ms: int,
    threshold_rules: Mapping[str, Sequence[ThresholdRule]],
    config_versions: Mapping[str, str] | None = None,
    since_ms: int | None = None,
    splits: bool = True,
    min_reviews: int = MIN_REVIEWS,
    min_agreement: float = MIN_AGREEMENT,
) -> str:
    """The whole `keel review stats` output. ``threshold_rules``: each agent's numeric handoff rules;
    ``config_versions``: each agent's current config version, whose items alone the suggestions read
    (an older version may have had another threshold)."""
    items = [item for item in items if since_ms is None or item.created_at_ms >= since_ms]
    decisions = list(decisions)
    stats = review_stats(items, decisions, now_ms=now_ms)
    suggestions: list[ThresholdSuggestion] = []
    for agent, rules in sorted(threshold_rules.items()):
        version = None if config_versions is None else config_versions.get(agent)
        suggestions += suggest_thresholds(
            agent,
            rules,
            items,
            decisions,
            config_version=version,
            min_reviews=min_reviews,
            min_agreement=min_agreement,
        )
    parts = [format_stats(stats, splits=splits)]
    if suggestions:
        parts.append(format_suggestions(suggestions))
    return "\n\n".join(parts)


def format_stats(stats: list[AgentReviewStats], *, splits: bool = True) -> str:
    """One row per agent and config version, then (``splits``) one per route and per rule; the QA-sample
    estimate of each agent's autonomous agreement under the table."""
    if not stats:
        return "no review items"
    lines = [_HEADER]
    for entry in stats:
        lines.append(_row(entry, "all", entry.total))
        if splits:
            lines += [_row(entry, f"route {route}", figures) for route, figures in entry.by_route.items()]
            lines += [_row(entry, f"rule {rule}", figures) for rule, figures in entry.by_rule.items()]
    for entry in stats:
        if entry.oldest_pending_ms is not None:
            lines.append(
                f"oldest pending: {entry.agent} {entry.config_version}: {format_wait_ms(entry.oldest_pending_ms)}"
            )
    for entry in stats:
        qa = entry.qa
        if qa is not None and qa.decided:
            lines.append(
                f"QA sample (unbiased agreement of autonomous output): {entry.agent} {entry.config_version}: "
                f"{_rate(qa.agreement_rate)} of {qa.decided:,} sampled results approved unchanged"
            )
    return "\n".join(lines)


def format_suggestions(suggestions: Iterable[ThresholdSuggestion]) -> str:
    return "\n".join(f"suggestion: {suggestion.sentence()}" for suggestion in suggestions)


def _row(entry: AgentReviewStats, group: str, figures: ReviewFigures) -> str:
    return (
        f"{entry.agent[:24]:<24} {entry.config_version[:14]:<14} {group[:24]:<24} {figures.items:>7,} "
        f"{figures.decided:>7,} {figures.pending:>7,} {_rate(figures.agreement_rate):>6} "
        f"{_rate(figures.edit_rate):>6} {_rate(figures.rejection_rate):>6} "
        f"{_wait(figures.decision_quantile_ms(0.5)):>8} {_wait(figures.decision_quantile_ms(0.95)):>8} "
        f"{_wait(figures.max_decision_ms):>8}"
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _wait(ms: int | None) -> str:
    return "-" if ms is None else format_wait_ms(ms).replace(" ", "")
