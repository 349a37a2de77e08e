"""Checking a reviewer's draft before it becomes a decision.

Pure. An edited output is checked exactly as the pipeline checks a model's answer (streams/pipeline/parse.py
over the agent's Avro output schema), so an accepted edit always encodes into the agent's result
schema. Every refusal is a ``Refused`` with a stable code the API turns into a status.
"""

from __future__ import annotations

from collections.abc import Mapping

from streams.agent.output_schema import AvroType
from streams.core.errors import OutputError
from streams.core.review_item import ACTIONS, Decision, DecisionDraft, ItemState, Refused
from streams.pipeline.parse import parse_json_object, validate_output


def accept(
    draft: DecisionDraft,
    state: ItemState | None,
    output_schemas: Mapping[str, AvroType],
    *,
    decision_id: str,
    now_ms: int,
) -> Decision:
    """The decision ``draft`` asks for, or ``Refused``. ``output_schemas``: each configured agent's
    output schema (JSON form)."""
    if draft.action not in ACTIONS:
        raise Refused("bad_request", f"unknown action {draft.action!r}: one of {', '.join(ACTIONS)}")
    if not draft.reviewer.strip():
        raise Refused("bad_request", "a decision needs a reviewer")
    if state is None:
        raise Refused("no_such_item", f"no review item {draft.item_id!r}")
    item = state.item
    if state.decision is not None:
        decided = state.decision
        raise Refused("already_decided", f"{item.item_id} was decided already ({decided.action} by {decided.reviewer})")
    schema = output_schemas.get(item.agent)
    if schema is None:
        raise Refused("bad_request", f"agent {item.agent!r} is not configured in this review service")
    reason = (draft.reason or "").strip() or None
    output_json: str | None = None
    if draft.action == "reject" and reason is None:
        raise Refused("missing_reason", "a rejection needs a reason")
    if draft.action == "approve":
        _approvable(schema, item.item_id, item.output_json)
    if draft.action == "edit":
        output_json = checked_output(schema, draft.output_json)
    return Decision(
        decision_id=decision_id,
        item_id=item.item_id,
        agent=item.agent,
        config_version=item.config_version,
        route=item.route,
        action=draft.action,
        reviewer=draft.reviewer.strip(),
        decided_at_ms=now_ms,
        reason=reason,
        output_json=output_json,
    )


def _approvable(schema: AvroType, item_id: str, output_json: str | None) -> None:
    if output_json is None:
        raise Refused("bad_request", f"{item_id} has no output to approve: edit it or reject it")
    try:
        checked_output(schema, output_json)
    except Refused as exc:  # the agent's schema changed since the output was produced
        raise Refused("bad_request", f"{item_id}'s output no longer fits the agent's schema ({exc}): edit it") from exc


def checked_output(schema: AvroType, text: str | None) -> str:
    """The edited output as compact JSON, once it is a JSON object valid for ``schema``."""
    if text is None or not text.strip():
        raise Refused("invalid_edit", "an edit needs the corrected output (a JSON object)")
    try:
        return validate_output(schema, parse_json_object(text, finish_reason="stop")).json
    except OutputError as exc:
        raise Refused("invalid_edit", str(exc)) from exc
