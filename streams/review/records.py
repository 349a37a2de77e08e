"""Review items and decisions as Kafka values, and back.

A review item (``<agent>.review``, subject ``keel.review-value``) is written by the worker
(streams/contracts/emit.py); the review service only reads it. Version 1 items (id 5) predate the route and the
original record: they read as route ``review`` with no rule and an empty original (a rejection's dead
letter then carries no input bytes). Decisions (``keel.review.decisions``, subject
``keel.review-decisions-value``) are written and read here, keyed by the item id so that every decision
on one item lands in one partition, in order: "first decision wins" is then a matter of log order.
"""

from __future__ import annotations

from typing import Any

from streams.contracts.headers import H_AGENT, H_EVENT_ID
from streams.contracts.out_record import OutRecord
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.domain import Headers
from streams.core.review_item import Action, Decision, ReviewAttempt, ReviewItem, Route, as_action
from streams.pipeline.handoff import rerun_pass, skipped_models

ITEM_SUBJECT = "keel.review-value"
DECISION_SUBJECT = "keel.review-decisions-value"


def decode_item(catalogue: Catalogue, data: bytes, headers: Headers = ()) -> ReviewItem:
    """A ``<agent>.review`` record (v1 or v2) as a ``ReviewItem``. Raises ``DecodeError``."""
    v = wire.decode(catalogue, data, subject=ITEM_SUBJECT)
    return ReviewItem(
        event_id=v["event_id"],
        agent=v["agent"],
        agent_version=v["agent_version"],
        config_version=v["config_version"],
        tenant=v["tenant"],
        business_key=v["business_key"],
        occurred_at_ms=wire.epoch_ms(v["occurred_at"]),
        created_at_ms=wire.epoch_ms(v["created_at"]),
        route=_route(v.get("route")),
        rule=v.get("rule"),
        reason=v["reason"],
        message=v["message"],
        request_payload=v["request_payload"],
        prompt=tuple((m["role"], m["content"]) for m in v["prompt"]),
        attempts=tuple(_attempt(a) for a in v["attempts"]),
        output_json=v["output"],
        warnings=tuple(v.get("warnings", ())),
        trace_id=v["trace_id"],
        input_topic=v.get("input_topic", ""),
        input_partition=v.get("input_partition", -1),
        input_offset=v.get("input_offset", -1),
        input_key=v.get("input_key"),
        input_value=v.get("input_value", b""),
        output_model=v.get("output_model"),
        output_model_version=v.get("output_model_version"),
        rerun_pass=rerun_pass(headers),  # both read any header: an item is never lost to one
        skipped_models=skipped_models(headers),
    )


def encode_decision(catalogue: Catalogue, decision: Decision) -> bytes:
    value = {
        "decision_id": decision.decision_id,
        "item_id": decision.item_id,
        "agent": decision.agent,
        "config_version": decision.config_version,
        "route": decision.route,
        "action": decision.action,
        "reviewer": decision.reviewer,
        "decided_at": decision.decided_at_ms,
        "reason": decision.reason,
        "output": decision.output_json,
    }
    return wire.encode(catalogue.by_subject(DECISION_SUBJECT), value)


def decision_record(catalogue: Catalogue, topic: str, decision: Decision) -> OutRecord:
    """The decision as a record of the decisions topic: keyed by item id, so the default partitioner
    puts every decision on one item in one partition."""
    headers = ((H_EVENT_ID, decision.item_id.encode()), (H_AGENT, decision.agent.encode()))
    return OutRecord(topic, decision.item_id.encode(), encode_decision(catalogue, decision), headers)


def decode_decision(catalogue: Catalogue, data: bytes) -> Decision:
    """A ``keel.review.decisions`` value as a ``Decision``. Raises ``DecodeError``."""
    v = wire.decode(catalogue, data, subject=DECISION_SUBJECT)
    return Decision(
        decision_id=v["decision_id"],
        item_id=v["item_id"],
        agent=v["agent"],
        config_version=v["config_version"],
        route=_route(v["route"]),
        action=_action(v["action"]),
        reviewer=v["reviewer"],
        decided_at_ms=wire.epoch_ms(v["decided_at"]),
        reason=v["reason"],
        output_json=v["output"],
    )


def _attempt(a: dict[str, Any]) -> ReviewAttempt:
    return ReviewAttempt(
        a["number"], a["purpose"], a["provider"], a["model"], a["model_version"], a["outcome"], a["latency_ms"]
    )


def _route(value: str | None) -> Route:
    return "flag" if value == "flag" else "review"


def _action(value: str) -> Action:
    action = as_action(value)
    if action is None:  # the schema's enum admits nothing else
        raise AssertionError(f"the decision schema admits no action {value!r}")
    return action
