"""The JSON API under ``/api/v1``: list items, read one, decide one; and the decision step the UI's forms
share with it.

Clients authenticate with HTTP Basic on every call (the auth middleware checks it). No cookie is ever
read here, so a browser cannot be tricked into sending an API call with someone's session: that is why
the API needs no CSRF token. Errors are ``{"error": code, "message": text}`` with a 4xx status.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from aiohttp import web

from streams.core.ports.clock import wall_clock_ms
from streams.core.review_item import Action, Decision, DecisionDraft, ItemState, Refused, ReviewItem
from streams.review.web.context import client_address, context, current_user
from streams.review.web.query import Problem, parse_action, parse_filter, pending_for

_DECISION_FIELDS = frozenset({"action", "reason", "output"})


async def submit_decision(
    request: web.Request, item_id: str, action: Action, *, reason: str | None, output_json: str | None, via: str
) -> Decision:
    """Check the item exists and is the user's to decide, ask the service, and log the attempt either way.
    The reviewer is the authenticated user, never something the request says. Raises ``Problem``."""
    ctx, user = context(request), current_user(request)
    fields = _attempt_fields(request, item_id, via=via, action=action)
    try:
        readable_state(request, item_id)
        draft = DecisionDraft(item_id, action, user.name, reason=reason, output_json=output_json)
        try:
            decision = await ctx.service.decide(draft)
        except Refused as refused:
            raise Problem.from_refusal(refused) from None
    except Problem as problem:
        ctx.access.record("decision", **fields, outcome="refused", code=problem.logged_code)
        raise
    ctx.access.record("decision", **fields, outcome="accepted", agent=decision.agent, decision_id=decision.decision_id)
    return decision


async def list_items(request: web.Request) -> web.Response:
    queue_filter = parse_filter(request.query, paged_by="offset")
    page = pending_for(context(request).service, current_user(request), queue_filter)
    now_ms = wall_clock_ms()
    body = {
        "items": [_summary(item, now_ms) for item in page.items],
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
    }
    return _json(body)


async def get_item(request: web.Request) -> web.Response:
    state = readable_state(request, request.match_info["item_id"])
    return _json(_item(state, wall_clock_ms()))


def readable_state(request: web.Request, item_id: str) -> ItemState:
    """The item and its decision, when it exists and is the user's to review. Raises ``Problem`` 404 for
    an item of an agent the user may not review too, exactly as for a missing one: a 403 would confirm
    to a reviewer that the id exists (the access log still says ``forbidden``)."""
    state = context(request).service.get(item_id)
    if state is None or not current_user(request).may_review(state.item.agent):
        logged = "no_such_item" if state is None else "forbidden"
        message = f"no review item {item_id} (decided and gone, or never there)"
        raise Problem(404, "no_such_item", message, logged_code=logged)
    return state


async def post_decision(request: web.Request) -> web.Response:
    item_id = request.match_info["item_id"]
    try:
        action, reason, output_json = await _decision_request(request)
    except Problem as problem:
        log_malformed(request, item_id, problem, via="api")
        raise
    decision = await submit_decision(request, item_id, action, reason=reason, output_json=output_json, via="api")
    return _json(decision_json(decision), status=201)


def log_malformed(request: web.Request, item_id: str, problem: Problem, *, via: str) -> None:
    """A decision request refused before it named a valid action is an attempt too."""
    fields = _attempt_fields(request, item_id, via=via)
    context(request).access.record("decision", **fields, outcome="refused", code=problem.code)


def _attempt_fields(
    request: web.Request, item_id: str, *, via: str, action: str | None = None
) -> dict[str, str | None]:
    """Who tried to decide what, and how: the access log's fields of a decision attempt."""
    user = current_user(request).name
    return {"user": user, "item": item_id, "action": action, "via": via, "remote": client_address(request)}


async def _decision_request(request: web.Request) -> tuple[Action, str | None, str | None]:
    body = await _body(request)
    action, reason, output = parse_action(body.get("action")), body.get("reason"), body.get("output")
    if reason is not None and not isinstance(reason, str):
        raise Problem(400, "bad_field", "reason must be a string")
    output_json = output if isinstance(output, str) or output is None else orjson.dumps(output).decode()
    return action, reason, output_json


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "malformed_json", f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Problem(400, "malformed_json", "the body must be a JSON object")
    unknown = sorted(set(body) - _DECISION_FIELDS)
    if unknown:  # e.g. "reviewer": the reviewer is whoever authenticated
        raise Problem(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}; allowed: action, reason, output")
    return body


def _json(body: object, *, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def problem_response(problem: Problem) -> web.Response:
    return _json({"error": problem.code, "message": problem.message}, status=problem.status)


def _summary(item: ReviewItem, now_ms: int) -> dict[str, Any]:
    return {
        "id": item.item_id,
        "agent": item.agent,
        "route": item.route,
        "rule": item.rule,
        "reason": item.reason,
        "message": item.message,
        "business_key": item.business_key,
        "tenant": item.tenant,
        "created_at_ms": item.created_at_ms,
        "age_s": max(0, now_ms - item.created_at_ms) / 1000,
    }


def _item(state: ItemState, now_ms: int) -> dict[str, Any]:
    item = state.item
    return {
        **_summary(item, now_ms),
        "agent_version": item.agent_version,
        "config_version": item.config_version,
        "occurred_at_ms": item.occurred_at_ms,
        "input": _parsed(item.request_payload),
        "output": _parsed(item.output_json),
        "output_model": item.output_model,
        "output_model_version": item.output_model_version,
        "warnings": list(item.warnings),
        "prompt": [{"role": role, "content": content} for role, content in item.prompt],
        "attempts": [dataclasses.asdict(a) for a in item.attempts],
        "trace_id": item.trace_id,
        "input_position": {"topic": item.input_topic, "partition": item.input_partition, "offset": item.input_offset},
        "decision": decision_json(state.decision) if state.decision else None,
    }


def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.decision_id,
        "item_id": decision.item_id,
        "agent": decision.agent,
        "action": decision.action,
        "reviewer": decision.reviewer,
        "decided_at_ms": decision.decided_at_ms,
        "reason": decision.reason,
        "output": _parsed(decision.output_json),
    }


def _parsed(text: str | None) -> Any:
    """JSON text as a value, so clients need not parse twice; text that is not JSON stays a string."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
