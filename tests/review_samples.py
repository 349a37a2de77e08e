"""Review items as the worker writes them (through the emitter's Review outcome), plain ones for the
queue's own tests, and plain decisions."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

import orjson

from streams.agent.definition import Agent
from streams.contracts.emit import Emitter
from streams.contracts.out_record import OutRecord
from streams.core.catalogue import Catalogue
from streams.core.domain import Attempt, RequestEvent, Review, SourceRecord, Trace
from streams.core.review_item import Decision, ReviewItem
from streams.core.settings import Settings
from streams.cost.pricing import PriceTable, Pricing
from streams.pipeline.decode import encode_request
from streams.review.records import decode_item

TRIAGE_OUTPUT = {"category": "billing", "priority": "low", "summary": "s", "suggested_reply": "r", "confidence": 0.5}
TICKET = {"ticket_id": "T-9", "subject": "Charged twice", "body": "twice this month"}
NO_PRICES = Pricing(PriceTable(version="none", prices=()))


def review_record(
    catalogue: Catalogue,
    settings: Settings,
    agent: Agent,
    *,
    route: str = "review",
    output: dict[str, object] | None = TRIAGE_OUTPUT,
    created_at_ms: int | None = None,
    offset: int = 11,
) -> OutRecord:
    """The ``<agent>.review`` record the worker writes for one event held (or flagged) for a human."""
    event = RequestEvent(
        event_id=f"ev-{uuid.uuid4().hex[:10]}",
        occurred_at_ms=1_800_000_000_000,
        tenant="acme",
        source_system="zendesk",
        business_key="T-9",
        payload=TICKET,
        payload_json=orjson.dumps(TICKET).decode(),
        trace_id="tr-9",
    )
    value = encode_request(catalogue, event)
    source = SourceRecord(settings.topic("support.tickets"), 1, offset, 1_700_000_000_000, b"T-9", value)
    attempt = Attempt("sim", "m", 1, 1_800_000_000_000, 0.25, 100, 30, "sim-1", "ok")
    trace = Trace(source, 1_800_000_000_000, event, "ph", (attempt,))
    review = Review(
        trace,
        "handoff_rule",
        "priority is low",
        (("system", "s"), ("user", "u")),
        output_json=None if output is None else orjson.dumps(output).decode(),
        route=route,
        rule="low_priority" if route == "flag" else "big_invoice",
        output_model="sim/m",
        output_model_version="sim-1",
    )
    now_ms = int(time.time() * 1000) if created_at_ms is None else created_at_ms
    return Emitter(catalogue, settings, [agent], pricing=NO_PRICES).records(review, agent, now_ms=now_ms).outcome


def review_item(catalogue: Catalogue, agent: Agent, **fields: object) -> ReviewItem:
    record = review_record(catalogue, Settings(namespace="t1"), agent, **fields)  # type: ignore[arg-type]
    return decode_item(catalogue, record.value, record.headers)


def plain_item(event_id: str, *, agent: str = "support_triage", created_at_ms: int = 0) -> ReviewItem:
    """A minimal item for the queue's tests (no schema work)."""
    return item_with(event_id=event_id, agent=agent, created_at_ms=created_at_ms)


def item_with(**fields: Any) -> ReviewItem:
    """A plain review item with ``fields`` set: the one place tests list every field of an item."""
    return replace(_PLAIN, **fields)


def decision_with(**fields: Any) -> Decision:
    """A plain decision (an approval by ann) with ``fields`` set: the one place tests list every field of
    a decision."""
    return replace(_DECISION, **fields)


_DECISION = Decision(
    decision_id="d1",
    item_id="e1",
    agent="support_triage",
    config_version="c1",
    route="review",
    action="approve",
    reviewer="ann",
    decided_at_ms=5,
    reason=None,
    output_json=None,
)

_PLAIN = ReviewItem(
    event_id="",
    agent="",
    agent_version="1",
    config_version="c1",
    tenant="acme",
    business_key="K",
    occurred_at_ms=0,
    created_at_ms=0,
    route="review",
    rule=None,
    reason="handoff_rule",
    message="m",
    request_payload="{}",
    prompt=(),
    attempts=(),
    output_json="{}",
    warnings=(),
    trace_id=None,
    input_topic="in",
    input_partition=0,
    input_offset=0,
    input_key=None,
    input_value=b"",
    output_model=None,
    output_model_version=None,
)
