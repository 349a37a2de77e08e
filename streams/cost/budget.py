"""Budgets: limits per day and per month, and the ledger that decides reservations against them.

Pure. A *scope* is what a budget belongs to: ``agent:<name>`` or ``tenant:<tenant>``. Before each model
call the worker reserves the call's maximum cost (a *hold*) in every scope the event falls under; after
the call it settles the hold with the real usage. Only the owner of a scope decides (see
streams/apps/worker/budget_owner.py): it applies the scope's requests one at a time, in the order of their
partition, to the scope's ``Ledger`` with ``apply``. A hold is granted only when the period's spend,
plus the holds still open, plus this hold stays within every limit of the period; so however many calls
run at once, in however many workers, the spend can pass a limit only by what a call costs beyond its
reservation (never, when the reservation is a true maximum). A hold that is not settled before it
expires (its worker died) counts as spent in full.

Periods are UTC calendar days and months: ``day:2026-11-24``, ``month:2026-11``.
"""

from __future__ import annotations

import calendar
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

PeriodKind = Literal["day", "month"]
KINDS: tuple[PeriodKind, ...] = ("day", "month")
ALERT_LEVELS = (0.5, 1.0)  # besides the scope's soft limit


@dataclass(frozen=True, slots=True)
class Limits:
    usd: float | None = None
    tokens: int | None = None

    def __bool__(self) -> bool:
        return self.usd is not None or self.tokens is not None


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """A scope's declared limits; ``soft_fraction`` of a limit raises an alert, the limit itself parks."""

    day: Limits = Limits()
    month: Limits = Limits()
    soft_fraction: float = 0.8

    def of(self, kind: PeriodKind) -> Limits:
        return self.day if kind == "day" else self.month

    def __bool__(self) -> bool:
        return bool(self.day) or bool(self.month)


@dataclass(frozen=True, slots=True)
class Amount:
    usd: float = 0.0
    tokens: int = 0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.usd + other.usd, self.tokens + other.tokens)


def period_of(kind: PeriodKind, at_ms: int) -> str:
    at = datetime.fromtimestamp(at_ms / 1000, UTC)
    return f"day:{at:%Y-%m-%d}" if kind == "day" else f"month:{at:%Y-%m}"


def period_end_ms(period: str) -> int:
    """When a period ends (UTC midnight after its last day): parked events may resume then."""
    kind, _, label = period.partition(":")
    if kind == "day":
        start = datetime.strptime(label, "%Y-%m-%d").replace(tzinfo=UTC)
        return int(start.timestamp() * 1000) + 86_400_000
    year, month = (int(part) for part in label.split("-"))
    days = calendar.monthrange(year, month)[1]
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000) + days * 86_400_000


@dataclass(frozen=True, slots=True)
class Hold:
    amount: Amount
    periods: tuple[str, ...]  # the day and month it was reserved in
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Ledger:
    """One scope's state at its owner. ``applied``: the offset of the last request applied, so a
    request read again after a restart changes nothing."""

    spent: dict[str, Amount] = field(default_factory=dict)  # by period
    holds: dict[str, Hold] = field(default_factory=dict)  # by reservation id
    raised: dict[str, Limits] = field(default_factory=dict)  # by period: limits set by `keel budget raise`
    alerted: dict[str, float] = field(default_factory=dict)  # by period: the highest level alerted
    applied: int = -1

    def held(self, period: str) -> Amount:
        held = Amount()
        for hold in self.holds.values():
            if period in hold.periods:
                held += hold.amount
        return held

    def committed(self, period: str) -> Amount:
        """Spent plus held in ``period``."""
        return self.spent.get(period, Amount()) + self.held(period)


@dataclass(frozen=True, slots=True)
class BudgetRequest:
    """What a worker (or `keel budget raise`) asks of a scope's owner.

    ``reserve``: hold ``amount`` if it fits; ``settle``: replace the hold by the real ``amount``;
    ``release``: drop the hold; ``probe``: would ``amount`` fit now? (nothing held); ``raise``: set the
    current ``raise_kind`` period's limits to ``raise_to``."""

    kind: Literal["reserve", "settle", "release", "probe", "raise"]
    request_id: str
    scope: str
    at_ms: int
    amount: Amount = Amount()
    limits: BudgetLimits = BudgetLimits()
    expires_ms: int = 0
    raise_kind: PeriodKind = "day"
    raise_to: Limits = Limits()


@dataclass(frozen=True, slots=True)
class Decision:
    request_id: str
    scope: str
    granted: bool
    period: str = ""  # when refused: the period whose limit it would pass
    limit: Limits = Limits()  # that period's limits
    committed: Amount = Amount()  # that period's spend plus holds
    until_ms: int = 0  # when refused: when that period ends


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    scope: str
    period: str
    level: float  # 0.5, the soft fraction or 1.0
    status: Literal["firing", "resolved"]
    observed: float  # committed / limit, of the limit that crossed the level
    limit: float
    unit: Literal["usd", "tokens"]


@dataclass(frozen=True, slots=True)
class Reservation:
    """A call's holds, one per scope: (scope, request id, the scope's limits); or why it was refused."""

    holds: tuple[tuple[str, str, BudgetLimits], ...] = ()
    refusal: Decision | None = None
    amount: Amount = Amount()  # what each hold reserved


Applied = tuple[Ledger, Decision | None, list[BudgetAlert]]


def apply(ledger: Ledger, request: BudgetRequest, *, offset: int, now_ms: int) -> Applied:
    """The scope's ledger after ``request`` (read at ``offset``), the answer owed to its sender (none
    for settle and release) and the alerts it raises or resolves."""
    if offset <= ledger.applied:  # read again after a restart: already in the ledger
        return ledger, None, []
    ledger = dataclasses.replace(_expire(ledger, now_ms), applied=offset)
    ledger, ended = _end_periods(_forget_old_periods(ledger, request.at_ms), request)
    ledger, decision, alerts = _apply(ledger, request)
    return ledger, decision, ended + alerts


def _apply(ledger: Ledger, request: BudgetRequest) -> Applied:
    periods = tuple(period_of(kind, request.at_ms) for kind in KINDS)
    if request.kind in ("reserve", "probe"):
        if request.kind == "reserve" and request.request_id in ledger.holds:  # sent again: same answer
            return ledger, Decision(request.request_id, request.scope, True), []
        refusal = _refusal(ledger, request, periods)
        if refusal is not None or request.kind == "probe":
            decision = refusal or Decision(request.request_id, request.scope, True)
            alerts = _full_alerts(ledger, request, refusal) if refusal and request.kind == "reserve" else []
            return _mark(ledger, alerts), decision, alerts
        new_hold = Hold(request.amount, periods, request.expires_ms)
        ledger = dataclasses.replace(ledger, holds={**ledger.holds, request.request_id: new_hold})
        return ledger, Decision(request.request_id, request.scope, True), []
    if request.kind == "raise":  # a limit not named keeps its value
        period = period_of(request.raise_kind, request.at_ms)
        now = limits_in(ledger, request.limits, period)
        to = request.raise_to
        raised = Limits(now.usd if to.usd is None else to.usd, now.tokens if to.tokens is None else to.tokens)
        ledger = dataclasses.replace(ledger, raised={**ledger.raised, period: raised})
        alerts = _resolved(ledger, period, request)
        return _mark(ledger, alerts), Decision(request.request_id, request.scope, True), alerts
    hold = ledger.holds.get(request.request_id)
    if hold is None:  # expired (and counted in full) or never granted
        return ledger, None, []
    holds = {k: v for k, v in ledger.holds.items() if k != request.request_id}
    spent = _spend(ledger.spent, [(hold.periods, request.amount)]) if request.kind == "settle" else ledger.spent
    ledger = dataclasses.replace(ledger, holds=holds, spent=spent)
    alerts = _level_alerts(ledger, request.limits, hold.periods, request.scope)
    return _mark(ledger, alerts), None, alerts


def limits_in(ledger: Ledger, limits: BudgetLimits, period: str) -> Limits:
    """The limits in force for ``period``: as raised, else as declared."""
    raised = ledger.raised.get(period)
    if raised is not None:
        return raised
    return limits.of("day" if period.startswith("day:") else "month")


def _refusal(ledger: Ledger, request: BudgetRequest, periods: tuple[str, ...]) -> Decision | None:
    for period in periods:
        limit, committed = limits_in(ledger, request.limits, period), ledger.committed(period)
        if _passes(committed + request.amount, limit):
            return Decision(request.request_id, request.scope, False, period, limit, committed, period_end_ms(period))
    return None


def _passes(amount: Amount, limit: Limits) -> bool:
    return (limit.usd is not None and amount.usd > limit.usd) or (
        limit.tokens is not None and amount.tokens > limit.tokens
    )


def _expire(ledger: Ledger, now_ms: int) -> Ledger:
    """Holds past their expiry count as spent in full: their call may have been paid for."""
    expired = {k: h for k, h in ledger.holds.items() if h.expires_ms <= now_ms}
    if not expired:
        return ledger
    spent = _spend(ledger.spent, [(hold.periods, hold.amount) for hold in expired.values()])
    holds = {k: h for k, h in ledger.holds.items() if k not in expired}
    return dataclasses.replace(ledger, spent=spent, holds=holds)


def _spend(spent: dict[str, Amount], amounts: list[tuple[tuple[str, ...], Amount]]) -> dict[str, Amount]:
    """``spent`` with each amount added in each of its periods."""
    spent = dict(spent)
    for periods, amount in amounts:
        for period in periods:
            spent[period] = spent.get(period, Amount()) + amount
    return spent


def _forget_old_periods(ledger: Ledger, at_ms: int) -> Ledger:
    """Keep the current and the previous day and month (for `keel budget status`), nothing older."""
    keep = {period_of(kind, at) for kind in KINDS for at in (at_ms, at_ms - 86_400_000, _month_before(at_ms))}
    if all(p in keep for p in (*ledger.spent, *ledger.raised, *ledger.alerted)):
        return ledger
    return dataclasses.replace(
        ledger,
        spent={p: a for p, a in ledger.spent.items() if p in keep},
        raised={p: a for p, a in ledger.raised.items() if p in keep},
        alerted={p: a for p, a in ledger.alerted.items() if p in keep},
    )


def _month_before(at_ms: int) -> int:
    at = datetime.fromtimestamp(at_ms / 1000, UTC)
    return int(at.replace(day=1).timestamp() * 1000) - 1


def _fractions(ledger: Ledger, limit: Limits, period: str) -> list[tuple[float, float, Literal["usd", "tokens"]]]:
    committed = ledger.spent.get(period, Amount())
    out: list[tuple[float, float, Literal["usd", "tokens"]]] = []
    if limit.usd:
        out.append((committed.usd / limit.usd, limit.usd, "usd"))
    if limit.tokens:
        out.append((committed.tokens / limit.tokens, float(limit.tokens), "tokens"))
    return out


def _level_alerts(ledger: Ledger, limits: BudgetLimits, periods: tuple[str, ...], scope: str) -> list[BudgetAlert]:
    """Spend crossing 50%, the soft limit or 100% of a limit: once per level and period."""
    levels = sorted({*ALERT_LEVELS, limits.soft_fraction})
    alerts = []
    for period in periods:
        for observed, limit, unit in _fractions(ledger, limits_in(ledger, limits, period), period):
            crossed = [level for level in levels if observed >= level]
            if crossed and crossed[-1] > ledger.alerted.get(period, 0.0):
                alerts.append(BudgetAlert(scope, period, crossed[-1], "firing", observed, limit, unit))
    return alerts


def _full_alerts(ledger: Ledger, request: BudgetRequest, refusal: Decision) -> list[BudgetAlert]:
    """The first refusal in a period: the hard limit is reached and events park."""
    if ledger.alerted.get(refusal.period, 0.0) >= 1.0:
        return []
    limit = refusal.limit
    unit: Literal["usd", "tokens"] = "usd" if limit.usd is not None else "tokens"
    value = float(limit.usd if limit.usd is not None else limit.tokens or 0)
    observed = (refusal.committed.usd if unit == "usd" else refusal.committed.tokens) / value if value else 1.0
    return [BudgetAlert(request.scope, refusal.period, 1.0, "firing", observed, value, unit)]


def _resolved(ledger: Ledger, period: str, request: BudgetRequest) -> list[BudgetAlert]:
    """A raise that brings the period back under its alerted level resolves the alert."""
    level = ledger.alerted.get(period, 0.0)
    fractions = _fractions(ledger, ledger.raised[period], period)
    if not level or any(observed >= level for observed, _, _ in fractions):
        return []
    observed, limit, unit = max(fractions, default=(0.0, 0.0, "usd"))
    return [BudgetAlert(request.scope, period, level, "resolved", observed, limit, unit)]


def _end_periods(ledger: Ledger, request: BudgetRequest) -> tuple[Ledger, list[BudgetAlert]]:
    """An alerted period that has ended resolves its alert: the next period starts with nothing spent."""
    ended = [p for p, level in ledger.alerted.items() if level and period_end_ms(p) <= request.at_ms]
    alerts = [BudgetAlert(request.scope, p, ledger.alerted[p], "resolved", 0.0, 0.0, "usd") for p in ended]
    return _mark(ledger, alerts), alerts


def _mark(ledger: Ledger, alerts: list[BudgetAlert]) -> Ledger:
    if not alerts:
        return ledger
    alerted = dict(ledger.alerted)
    for alert in alerts:
        alerted[alert.period] = alert.level if alert.status == "firing" else 0.0
    return dataclasses.replace(ledger, alerted=alerted)


def ledger_to_doc(ledger: Ledger) -> dict[str, Any]:
    return {
        "spent": {p: [a.usd, a.tokens] for p, a in ledger.spent.items()},
        "holds": {k: [h.amount.usd, h.amount.tokens, list(h.periods), h.expires_ms] for k, h in ledger.holds.items()},
        "raised": {p: [lim.usd, lim.tokens] for p, lim in ledger.raised.items()},
        "alerted": ledger.alerted,
        "applied": ledger.applied,
    }


def ledger_from_doc(doc: dict[str, Any]) -> Ledger:
    return Ledger(
        spent={p: Amount(usd, tokens) for p, (usd, tokens) in doc["spent"].items()},
        holds={k: Hold(Amount(u, t), tuple(periods), exp) for k, (u, t, periods, exp) in doc["holds"].items()},
        raised={p: Limits(usd, tokens) for p, (usd, tokens) in doc["raised"].items()},
        alerted=dict(doc["alerted"]),
        applied=doc["applied"],
    )
