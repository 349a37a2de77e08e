"""The budget ledger's rules (streams/cost/budget.py): holds, settlements, refusals, expiry, raises, alerts."""

from __future__ import annotations

from datetime import UTC, datetime

from streams.cost.budget import (
    Amount,
    BudgetLimits,
    BudgetRequest,
    Ledger,
    Limits,
    apply,
    period_end_ms,
    period_of,
)

NOW = int(datetime(2026, 11, 24, 12, tzinfo=UTC).timestamp() * 1000)
LIMITS = BudgetLimits(day=Limits(usd=1.0), month=Limits(tokens=10_000))


def _run(ledger: Ledger, *requests: BudgetRequest, first_offset: int = 0, now_ms: int = NOW) -> tuple[Ledger, list]:
    answers = []
    for offset, request in enumerate(requests, start=first_offset):
        ledger, decision, alerts = apply(ledger, request, offset=offset, now_ms=now_ms)
        answers.append((decision, alerts))
    return ledger, answers


def reserve(
    rid: str, usd: float, tokens: int = 0, *, at_ms: int = NOW, expires_ms: int = NOW + 60_000
) -> BudgetRequest:
    return BudgetRequest("reserve", rid, "agent:a", at_ms, Amount(usd, tokens), LIMITS, expires_ms)


def settle(rid: str, usd: float, tokens: int = 0) -> BudgetRequest:
    return BudgetRequest("settle", rid, "agent:a", NOW, Amount(usd, tokens), LIMITS)


def test_periods_are_utc_days_and_months() -> None:
    assert period_of("day", NOW) == "day:2026-11-24" and period_of("month", NOW) == "month:2026-11"
    assert period_end_ms("day:2026-11-24") == int(datetime(2026, 11, 25, tzinfo=UTC).timestamp() * 1000)
    assert period_end_ms("month:2026-12") == int(datetime(2027, 1, 1, tzinfo=UTC).timestamp() * 1000)


def test_holds_count_until_settled_and_a_call_that_would_pass_the_limit_is_refused() -> None:
    ledger, answers = _run(Ledger(), reserve("a", 0.4), reserve("b", 0.4), reserve("c", 0.4))
    assert [d.granted for d, _ in answers] == [True, True, False]
    refusal = answers[2][0]
    assert refusal.period == "day:2026-11-24" and refusal.committed == Amount(0.8, 0)
    assert refusal.until_ms == period_end_ms("day:2026-11-24")
    ledger, answers = _run(ledger, settle("a", 0.1), reserve("c", 0.4), first_offset=3)
    assert answers[1][0].granted  # the settlement gave back what the call did not cost
    assert ledger.spent["day:2026-11-24"] == Amount(0.1, 0) and ledger.committed("day:2026-11-24").usd == 0.9


def test_a_token_limit_of_the_month_refuses_too() -> None:
    _, answers = _run(Ledger(), reserve("a", 0.0, 6_000), reserve("b", 0.0, 6_000))
    assert [d.granted for d, _ in answers] == [True, False]
    assert answers[1][0].period == "month:2026-11"


def test_a_request_read_again_after_a_restart_changes_nothing() -> None:
    ledger, _ = _run(Ledger(), reserve("a", 0.4), settle("a", 0.3))
    again, decision, alerts = apply(ledger, settle("a", 0.3), offset=1, now_ms=NOW)
    assert again is ledger and decision is None and not alerts


def test_a_reservation_sent_again_gets_the_same_answer_and_holds_once() -> None:
    ledger, answers = _run(Ledger(), reserve("a", 0.6), reserve("a", 0.6))
    assert [d.granted for d, _ in answers] == [True, True]
    assert ledger.committed("day:2026-11-24").usd == 0.6


def test_an_unsettled_hold_counts_as_spent_in_full_once_it_expires() -> None:
    ledger, _ = _run(Ledger(), reserve("a", 0.7, expires_ms=NOW + 1_000))
    ledger, _ = _run(ledger, settle("a", 0.1), first_offset=1, now_ms=NOW + 2_000)
    assert ledger.spent["day:2026-11-24"].usd == 0.7 and not ledger.holds  # the late settlement changes nothing


def test_a_raise_makes_room_this_period_and_keeps_limits_it_does_not_name() -> None:
    ledger, _ = _run(Ledger(), reserve("a", 0.9), settle("a", 0.9))
    raised = BudgetRequest("raise", "r", "agent:a", NOW, limits=LIMITS, raise_kind="day", raise_to=Limits(usd=2.0))
    ledger, answers = _run(ledger, reserve("b", 0.5), raised, reserve("b", 0.5), first_offset=2)
    assert [d.granted for d, _ in answers] == [False, True, True]
    assert ledger.raised["day:2026-11-24"] == Limits(usd=2.0)
    [(_, alerts)] = answers[1:2]
    assert [(a.status, a.level) for a in alerts] == [("resolved", 1.0)]


def test_spend_alerts_fire_once_per_level_and_period_and_the_hard_limit_alerts_at_its_first_refusal() -> None:
    _, answers = _run(
        Ledger(),
        reserve("a", 0.5), settle("a", 0.5),  # 50%
        reserve("b", 0.1), settle("b", 0.1),  # 60%: nothing new
        reserve("c", 0.3), settle("c", 0.3),  # 90%: past the soft limit (80%)
        reserve("d", 0.3), reserve("e", 0.3),  # refused twice: the hard limit alerts once
    )  # fmt: skip
    alerts = [(a.status, a.level, round(a.observed, 2)) for _, found in answers for a in found]
    assert alerts == [("firing", 0.5, 0.5), ("firing", 0.8, 0.9), ("firing", 1.0, 0.9)]


def test_the_next_day_starts_empty_and_resolves_the_day_before() -> None:
    ledger, _ = _run(Ledger(), reserve("a", 0.9), settle("a", 0.9), reserve("b", 0.5))
    tomorrow = NOW + 86_400_000
    ledger, answers = _run(ledger, reserve("c", 0.5, at_ms=tomorrow, expires_ms=tomorrow + 60_000), first_offset=3)
    decision, alerts = answers[0]
    assert decision.granted
    assert [(a.status, a.period) for a in alerts] == [("resolved", "day:2026-11-24")]
