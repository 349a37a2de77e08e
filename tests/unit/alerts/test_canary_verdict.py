"""The canary's verdict: enough events first, then rates by a one-sided z-test past the declared
margin, and means by the declared ratio."""

from __future__ import annotations

import pytest

from streams.agent.definition import CanaryPolicy
from streams.alerts.canary import ArmStats, judge, runs

POLICY = CanaryPolicy(min_events=30)


def arm(events: int, dead: int = 0, *, latency_ms: float = 100.0, cost_usd: float = 0.01) -> ArmStats:
    stats = ArmStats()
    for n in range(events):
        stats.add_audit(f"e{n}", "dead_letter" if n < dead else "result", latency_ms, None)
        stats.add_usage("output_not_json" if n < dead else "ok", "initial", cost_usd)
    return stats


def test_no_verdict_before_both_versions_decided_enough_events() -> None:
    verdict = judge(arm(100), arm(29, dead=29), POLICY)
    assert not verdict.enough and not verdict.roll_back


def test_a_clearly_higher_dead_letter_rate_rolls_back() -> None:
    verdict = judge(arm(120, dead=2), arm(30, dead=12), POLICY)
    assert verdict.roll_back
    assert verdict.worse[0].startswith("dead letters per event: canary 40.0% (12/30), stable 1.7% (2/120)")
    assert any(reason.startswith("invalid answers per model call") for reason in verdict.worse)


@pytest.mark.parametrize(
    ("stable", "canary"),
    [((120, 6), (30, 2)), ((120, 0), (30, 1)), ((30, 3), (30, 6))],  # within the margin, or not significant
)
def test_a_difference_chance_explains_is_not_worse(stable: tuple[int, int], canary: tuple[int, int]) -> None:
    assert judge(arm(*stable), arm(*canary), POLICY).worse == ()


def test_cost_and_latency_count_by_their_ratio() -> None:
    verdict = judge(arm(50), arm(50, latency_ms=160.0, cost_usd=0.016), POLICY)
    assert [r.split(":")[0] for r in verdict.worse] == ["cost per event (USD)", "latency per event (ms)"]
    assert judge(arm(50), arm(50, latency_ms=140.0, cost_usd=0.014), POLICY).worse == ()


def test_rejections_and_redeliveries() -> None:
    stable, canary = arm(40), arm(40)
    for n in range(20):
        stable.add_audit(f"e{n}", "result", 1.0, "reject" if n < 1 else "approve")
        canary.add_audit(f"e{n}", "result", 1.0, "reject" if n < 12 else "approve")
        canary.add_audit(f"e{n}", "result", 1.0, None)  # a redelivered event's audit: counted once
    assert canary.events == 40 and canary.reviewed == 20 and canary.rejected == 12
    assert judge(stable, canary, POLICY).worse[0].startswith("rejections per reviewed item: canary 60.0%")


def test_a_record_runs_a_version_with_or_without_the_workers_provider_override() -> None:
    assert runs("abc123", "abc123") and runs("abc123-sim", "abc123")
    assert not runs("abc1234", "abc123") and not runs("abc", "abc123")
