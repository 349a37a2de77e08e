"""Budget requests and decisions as Avro values, and an owner's ledger as a JSON snapshot.

Requests (``keel.budget.requests``) are keyed by scope, so that every request about one scope is read,
in order, by the one worker that owns the scope's partition. Decisions (``keel.budget.decisions``) go
to the partition the sender reads. Snapshots (the compacted ``<app id>-budget-ledger``) hold each
scope's ledger as of the last request applied, in the scope's request partition number.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.errors import UnexpectedValue
from streams.cost.budget import (
    Amount,
    BudgetLimits,
    BudgetRequest,
    Decision,
    Ledger,
    Limits,
    ledger_from_doc,
    ledger_to_doc,
    period_end_ms,
)

REQUEST_SUBJECT = "keel.budget-requests-value"
DECISION_SUBJECT = "keel.budget-decisions-value"
# What a request Keel writes can hold: a time its periods (and the day and month before) can be named
# in, and amounts and limits that add up without overflowing the decisions' longs.
LATEST_MS = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_TOKENS = 10**12
MAX_USD = 1e12


class BudgetCodec:
    def __init__(self, catalogue: Catalogue) -> None:
        self._catalogue = catalogue
        self._request = catalogue.by_subject(REQUEST_SUBJECT)
        self._decision = catalogue.by_subject(DECISION_SUBJECT)

    def encode_request(self, request: BudgetRequest, *, reply_partition: int) -> bytes:
        limits, raised = request.limits, request.raise_to
        value = {
            "kind": request.kind,
            "request_id": request.request_id,
            "scope": request.scope,
            "at_ms": request.at_ms,
            "usd": request.amount.usd,
            "tokens": request.amount.tokens,
            "day_usd": limits.day.usd,
            "day_tokens": limits.day.tokens,
            "month_usd": limits.month.usd,
            "month_tokens": limits.month.tokens,
            "soft_fraction": limits.soft_fraction,
            "expires_ms": request.expires_ms,
            "raise_kind": request.raise_kind if request.kind == "raise" else None,
            "raise_usd": raised.usd,
            "raise_tokens": raised.tokens,
            "reply_partition": reply_partition,
        }
        return wire.encode(self._request, value)

    def decode_request(self, data: bytes) -> tuple[BudgetRequest, int]:
        """The request and the partition its sender reads (-1: none). Raises ``DecodeError``."""
        v = wire.decode(self._catalogue, data, subject=REQUEST_SUBJECT)
        request = BudgetRequest(
            kind=v["kind"],
            request_id=v["request_id"],
            scope=v["scope"],
            at_ms=wire.epoch_ms(v["at_ms"]),
            amount=Amount(v["usd"], v["tokens"]),
            limits=BudgetLimits(
                Limits(v["day_usd"], v["day_tokens"]), Limits(v["month_usd"], v["month_tokens"]), v["soft_fraction"]
            ),
            expires_ms=v["expires_ms"],
            raise_kind="month" if v["raise_kind"] == "month" else "day",
            raise_to=Limits(v["raise_usd"], v["raise_tokens"]),
        )
        problem = request_problem(request)
        if problem is not None:
            raise UnexpectedValue(f"budget request {request.request_id!r}: {problem}")
        return request, v["reply_partition"]

    def encode_decision(self, decision: Decision) -> bytes:
        value = {
            "request_id": decision.request_id,
            "scope": decision.scope,
            "granted": decision.granted,
            "period": decision.period,
            "limit_usd": decision.limit.usd,
            "limit_tokens": decision.limit.tokens,
            "committed_usd": decision.committed.usd,
            "committed_tokens": decision.committed.tokens,
            "until_ms": decision.until_ms,
        }
        return wire.encode(self._decision, value)

    def decode_decision(self, data: bytes) -> Decision:
        v = wire.decode(self._catalogue, data, subject=DECISION_SUBJECT)
        return Decision(
            request_id=v["request_id"],
            scope=v["scope"],
            granted=v["granted"],
            period=v["period"],
            limit=Limits(v["limit_usd"], v["limit_tokens"]),
            committed=Amount(v["committed_usd"], v["committed_tokens"]),
            until_ms=v["until_ms"],
        )


def request_problem(request: BudgetRequest) -> str | None:
    """What in ``request`` Keel never writes, or None: a decision on it could not be computed or
    written (a time out of range, amounts that are negative, not finite or past any real call)."""
    if not 0 <= request.at_ms < LATEST_MS:
        return f"at_ms {request.at_ms} is out of range"
    limits = request.limits
    if not 0 < limits.soft_fraction <= 1:
        return f"soft_fraction {limits.soft_fraction} is out of range"
    for name, amount in (("amount", request.amount), ("day limit", limits.day), ("month limit", limits.month)):
        if not _fits(amount.usd, amount.tokens):
            return f"the {name} ({amount.usd} USD, {amount.tokens} tokens) is out of range"
    if not _fits(request.raise_to.usd, request.raise_to.tokens):
        return f"the raise ({request.raise_to.usd} USD, {request.raise_to.tokens} tokens) is out of range"
    return None


def _fits(usd: float | None, tokens: int | None) -> bool:
    usd_ok = usd is None or (isinstance(usd, int | float) and math.isfinite(usd) and 0 <= usd <= MAX_USD)
    return usd_ok and (tokens is None or (isinstance(tokens, int) and 0 <= tokens <= MAX_TOKENS))


def encode_ledger(ledger: Ledger) -> bytes:
    return orjson.dumps(ledger_to_doc(ledger))


def decode_ledger(data: bytes) -> Ledger:
    """Raises ``ValueError`` (or ``KeyError``/``TypeError``/``AttributeError``) for a snapshot this
    version did not write: its values are checked too, so that applying requests to it cannot fail."""
    doc: dict[str, Any] = orjson.loads(data)
    ledger = ledger_from_doc(doc)
    holds = list(ledger.holds.values())
    spent = [*ledger.spent.values(), *(hold.amount for hold in holds)]
    periods = [*ledger.spent, *ledger.raised, *ledger.alerted, *(p for hold in holds for p in hold.periods)]
    for period in periods:
        period_end_ms(period)  # raises ValueError (or TypeError) for a period Keel does not name
    if not (
        all(a.usd is not None and _summed(a.usd, a.tokens) for a in spent)
        and all(_summed(limits.usd, limits.tokens) for limits in ledger.raised.values())
        and all(isinstance(h.expires_ms, int) for h in holds)
        and all(isinstance(level, int | float) and math.isfinite(level) for level in ledger.alerted.values())
        and isinstance(ledger.applied, int)
    ):
        raise ValueError("a ledger snapshot with values this version never writes")
    return ledger


def _summed(usd: float | None, tokens: int | None) -> bool:
    """A ledger's sums: finite and not negative, tokens within a long."""
    usd_ok = usd is None or (isinstance(usd, int | float) and math.isfinite(usd) and usd >= 0)
    return usd_ok and (tokens is None or (isinstance(tokens, int) and 0 <= tokens < 2**62))
