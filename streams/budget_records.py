"""Budget requests and decisions as Avro values, and an owner's ledger as a JSON snapshot.

Requests (``keel.budget.requests``) are keyed by scope, so that every request about one scope is read,
in order, by the one worker that owns the scope's partition. Decisions (``keel.budget.decisions``) go
to the partition the sender reads. Snapshots (the compacted ``<app id>-budget-ledger``) hold each
scope's ledger as of the last request applied, in the scope's request partition number.
"""

from __future__ import annotations

from typing import Any

import orjson

from streams import wire
from streams.budget import Amount, BudgetLimits, BudgetRequest, Decision, Ledger, Limits, ledger_from_doc, ledger_to_doc
from streams.catalogue import Catalogue

REQUEST_SUBJECT = "keel.budget-requests-value"
DECISION_SUBJECT = "keel.budget-decisions-value"


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


def encode_ledger(ledger: Ledger) -> bytes:
    return orjson.dumps(ledger_to_doc(ledger))


def decode_ledger(data: bytes) -> Ledger:
    """Raises ``ValueError`` (or ``KeyError``/``TypeError``) for a snapshot this version did not write."""
    doc: dict[str, Any] = orjson.loads(data)
    return ledger_from_doc(doc)
