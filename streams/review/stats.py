"""Measured handoff: how reviewers answer what the handoff rules send them, per agent and config version.

Pure: review items (``<agent>.review``) and decisions (``keel.review.decisions``) in, figures out; the
caller reads the topics and chooses the time (``now_ms``). The figures say whether a rule sends humans
work they merely wave through (a high agreement rate) or work that needs them (edits, rejections), and
how long the queue keeps an item. Items of the ``qa_sample`` rule are autonomous results picked at random
for measuring: their agreement rate is the unbiased estimate of how often the agent's unreviewed output
is right, so it is reported on its own besides being counted with the rest.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from streams.agent.handoff_policy import QA_SAMPLE
from streams.core.review_item import Decision, ReviewItem

QA_SAMPLE_RULE = QA_SAMPLE  # the rule (and reason) of results sampled for measuring


@dataclass(frozen=True, slots=True)
class ReviewFigures:
    """One group of items: how many, how they were decided, and how long a decision took."""

    items: int = 0
    approved: int = 0  # approved unchanged
    edited: int = 0
    rejected: int = 0
    decision_ms: tuple[int, ...] = ()  # decided_at - created_at of each decided item, ascending

    @property
    def decided(self) -> int:
        return self.approved + self.edited + self.rejected

    @property
    def pending(self) -> int:
        """The queue depth: items with no decision yet."""
        return self.items - self.decided

    @property
    def agreement_rate(self) -> float | None:
        return _share(self.approved, self.decided)

    @property
    def edit_rate(self) -> float | None:
        return _share(self.edited, self.decided)

    @property
    def rejection_rate(self) -> float | None:
        return _share(self.rejected, self.decided)

    def decision_quantile_ms(self, quantile: float) -> int | None:
        """Nearest rank over the exact times (None: nothing decided)."""
        if not self.decision_ms:
            return None
        rank = max(1, math.ceil(quantile * len(self.decision_ms)))
        return self.decision_ms[rank - 1]

    @property
    def max_decision_ms(self) -> int | None:
        return self.decision_ms[-1] if self.decision_ms else None


@dataclass(frozen=True, slots=True)
class AgentReviewStats:
    """The figures of one agent's config version, in total and split by route and by rule."""

    agent: str
    config_version: str
    total: ReviewFigures
    by_route: dict[str, ReviewFigures] = field(default_factory=dict)  # review | flag
    by_rule: dict[str, ReviewFigures] = field(default_factory=dict)  # see ``rule_key``
    oldest_pending_ms: int | None = None  # how long the oldest pending item has waited at now_ms

    @property
    def qa(self) -> ReviewFigures | None:
        """The QA-sampled items: their agreement rate estimates that of the agent's autonomous output."""
        return self.by_rule.get(QA_SAMPLE_RULE)


def rule_key(item: ReviewItem) -> str:
    """The rule that sent the item; items the reliability policy sent (no rule) by their reason code."""
    if item.rule is None and item.reason == QA_SAMPLE_RULE:
        return QA_SAMPLE_RULE
    return item.rule if item.rule is not None else f"({item.reason})"


def first_decisions(decisions: Iterable[Decision]) -> dict[str, Decision]:
    """The decision that counts for each item: the first in log order (a later one was refused)."""
    first: dict[str, Decision] = {}
    for decision in decisions:
        first.setdefault(decision.item_id, decision)
    return first


def review_stats(
    items: Iterable[ReviewItem], decisions: Iterable[Decision], *, now_ms: int, since_ms: int | None = None
) -> list[AgentReviewStats]:
    """Figures per (agent, config version), sorted by both. ``since_ms`` keeps items created since then.

    A decision whose item is not among ``items`` (its topic no longer keeps it) is left out: without the
    item there is neither a creation time nor a rule to count it under.
    """
    decided = first_decisions(decisions)
    groups: dict[tuple[str, str], list[_Pair]] = defaultdict(list)
    for item in items:
        if since_ms is None or item.created_at_ms >= since_ms:
            groups[(item.agent, item.config_version)].append((item, decided.get(item.item_id)))
    return [_stats(agent, version, pairs, now_ms) for (agent, version), pairs in sorted(groups.items())]


_Pair = tuple[ReviewItem, Decision | None]  # an item and the decision that counts for it (None: pending)


def _stats(agent: str, config_version: str, pairs: list[_Pair], now_ms: int) -> AgentReviewStats:
    waiting_since = [item.created_at_ms for item, decision in pairs if decision is None]
    return AgentReviewStats(
        agent=agent,
        config_version=config_version,
        total=_figures(pairs),
        by_route=_split(pairs, lambda item: item.route),
        by_rule=_split(pairs, rule_key),
        oldest_pending_ms=max(0, now_ms - min(waiting_since)) if waiting_since else None,
    )


def _split(pairs: list[_Pair], key: Callable[[ReviewItem], str]) -> dict[str, ReviewFigures]:
    groups: dict[str, list[_Pair]] = defaultdict(list)
    for pair in pairs:
        groups[key(pair[0])].append(pair)
    return {name: _figures(group) for name, group in sorted(groups.items())}


def _figures(pairs: list[_Pair]) -> ReviewFigures:
    actions = Counter(decision.action for _, decision in pairs if decision is not None)
    waits = sorted(max(0, d.decided_at_ms - item.created_at_ms) for item, d in pairs if d is not None)
    return ReviewFigures(len(pairs), actions["approve"], actions["edit"], actions["reject"], tuple(waits))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def format_wait_ms(ms: float) -> str:
    """``45s``, ``12m 05s``, ``3h 05m``, ``2d 04h``: a wait as a person reads it at a glance."""
    seconds = int(ms // 1000)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"
