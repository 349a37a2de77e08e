"""Is the canary worse than the stable version? What `keel aggregate` counts per version while a canary
runs, and the verdict it draws (streams/apps/aggregator/canary_judge.py).

Per version, from the audit records (one per event) and the usage records (one per model call) that
name it: events, dead letters, latency from arrival to outcome, reviewers' decisions and rejections;
model calls, answers that failed parsing or the output schema, re-asks and cost.

The verdict waits until each version has decided ``min_events`` events. A rate (dead letters per
event, invalid answers per call, rejections per reviewed item) counts against the canary when it is
higher than the stable version's by more than the policy allows and a one-sided two-proportion z-test
(pooled) says the difference is real at the 1 % level (z > 2.326). Cost and latency per event count
against it when the canary's mean over the stable version's mean passes the declared ratio (no test:
means of a few dozen events, as declared; the policy sets how much slack that leaves).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from streams.agent.definition import CanaryPolicy
from streams.cost.usage_windows import VALIDATION_REASONS

Z_ONE_SIDED_1PCT = 2.326


def runs(config_version: str, version_id: str) -> bool:
    """Whether a record's config version is ``version_id`` (a worker may add its provider override)."""
    return config_version == version_id or config_version.startswith(f"{version_id}-")


@dataclass(slots=True)
class ArmStats:
    """One version's figures since the canary started."""

    events: int = 0
    dead_letters: int = 0
    latency_ms: float = 0.0
    reviewed: int = 0
    rejected: int = 0
    calls: int = 0
    invalid: int = 0
    reasks: int = 0
    cost_usd: float = 0.0
    seen: set[str] = field(default_factory=set, repr=False)  # event ids: a redelivered record counts once

    def add_audit(self, event_id: str, outcome: str, total_ms: float, review_action: str | None) -> None:
        if review_action is not None:  # a reviewer's decision on an item this version held
            self.reviewed += 1
            self.rejected += review_action == "reject"
            return
        if event_id in self.seen:
            return
        self.seen.add(event_id)
        self.events += 1
        self.dead_letters += outcome == "dead_letter"
        self.latency_ms += total_ms

    def add_usage(self, outcome: str, purpose: str, cost_usd: float | None) -> None:
        self.calls += 1
        self.invalid += outcome in VALIDATION_REASONS
        self.reasks += purpose == "reask"
        self.cost_usd += cost_usd or 0.0

    def per_event(self, total: float) -> float:
        return total / self.events if self.events else 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    enough: bool  # both versions decided enough events to tell
    worse: tuple[str, ...]  # why the canary is worse (empty: it is not)

    @property
    def roll_back(self) -> bool:
        return self.enough and bool(self.worse)


def judge(stable: ArmStats, canary: ArmStats, policy: CanaryPolicy) -> Verdict:
    if min(stable.events, canary.events) < policy.min_events:
        return Verdict(False, ())
    worse = [
        _rate("dead letters per event", (stable.dead_letters, stable.events), (canary.dead_letters, canary.events),
              policy.max_dead_letter_increase),
        _rate("invalid answers per model call", (stable.invalid, stable.calls), (canary.invalid, canary.calls),
              policy.max_invalid_increase),
        _rate("rejections per reviewed item", (stable.rejected, stable.reviewed), (canary.rejected, canary.reviewed),
              policy.max_rejection_increase),
        _ratio("cost per event (USD)", stable.per_event(stable.cost_usd), canary.per_event(canary.cost_usd),
               policy.max_cost_ratio),
        _ratio("latency per event (ms)", stable.per_event(stable.latency_ms), canary.per_event(canary.latency_ms),
               policy.max_latency_ratio),
    ]  # fmt: skip
    return Verdict(True, tuple(reason for reason in worse if reason is not None))


def _rate(what: str, stable: tuple[int, int], canary: tuple[int, int], margin: float) -> str | None:
    (hits_s, n_s), (hits_c, n_c) = stable, canary
    if not n_s or not n_c:
        return None
    p_s, p_c = hits_s / n_s, hits_c / n_c
    pooled = (hits_s + hits_c) / (n_s + n_c)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_s + 1 / n_c))
    if p_c - p_s <= margin or spread == 0 or (p_c - p_s) / spread <= Z_ONE_SIDED_1PCT:
        return None
    z = (p_c - p_s) / spread
    return f"{what}: canary {p_c:.1%} ({hits_c}/{n_c}), stable {p_s:.1%} ({hits_s}/{n_s}), z = {z:.1f}"


def _ratio(what: str, stable: float, canary: float, limit: float) -> str | None:
    if stable <= 0 or canary / stable <= limit:
        return None
    return f"{what}: canary {canary:.4g}, stable {stable:.4g}, {canary / stable:.2f} times (at most {limit:g})"
