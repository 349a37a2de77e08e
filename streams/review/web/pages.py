"""The review UI's page handlers: the queue, an item, and a decision posted from an item's forms.

The reviewer's place in the queue travels in the query (``at``: the item's position under the filter),
so previous/next are one ``pending(offset=..., limit=1)`` away, whatever the queue's size. After a
decision the item has left the queue, so the next pending one is found at the same position.
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from streams.core.ports.clock import wall_clock_ms
from streams.core.review_item import ACTIONS, Action, ReviewItem
from streams.review.web.api import log_malformed, readable_state, submit_decision
from streams.review.web.context import SESSION, context, current_user, form_text, html_response
from streams.review.web.html import Viewer, queue_page, queue_query
from streams.review.web.item_html import ItemView, item_page
from streams.review.web.query import Problem, QueueFilter, parse_action, parse_filter, pending_for, visible_agents


def viewer(request: web.Request) -> Viewer:
    return Viewer(current_user(request), request[SESSION].csrf_token)


async def show_queue(request: web.Request) -> web.Response:
    ctx, user = context(request), current_user(request)
    queue_filter = parse_filter(request.query, paged_by="page")
    page = pending_for(ctx.service, user, queue_filter)
    agents = visible_agents(user, ctx.service.agents())
    return html_response(queue_page(viewer(request), page, queue_filter, agents=agents, now_ms=wall_clock_ms()))


async def show_item(request: web.Request) -> web.Response:
    state = readable_state(request, request.match_info["item_id"])
    queue_filter = parse_filter(request.query, paged_by="page")
    decided = request.query.get("decided")
    notice = f"Recorded: {decided} of the previous item." if decided in ACTIONS else None
    view = _view(request, state.item, queue_filter, _position(request.query.get("at")), notice=notice)
    return html_response(item_page(viewer(request), state, view))


async def post_decision_form(request: web.Request) -> web.StreamResponse:
    """A decision from the item page's forms (the middleware has checked the CSRF token)."""
    form = await request.post()
    item_id = request.match_info["item_id"]
    queue_filter = parse_filter({k: str(v) for k, v in form.items() if k in ("agent", "min_age_s")}, paged_by="page")
    position = _position(form_text(form, "at"))
    reason, output = form_text(form, "reason"), form_text(form, "output")
    try:
        action = parse_action(form.get("action"))
    except Problem as problem:
        log_malformed(request, item_id, problem, via="ui")
        raise
    edited = output if action == "edit" else None
    try:
        await submit_decision(request, item_id, action, reason=reason or None, output_json=edited, via="ui")
    except Problem as problem:
        if problem.status in (403, 404):
            raise
        state = readable_state(request, item_id)
        view = _view(request, state.item, queue_filter, position, problem=problem.message)
        view = replace(view, reason_text=reason or "", output_text=edited)
        return html_response(item_page(viewer(request), state, view), status=problem.status)
    raise web.HTTPSeeOther(_after_decision(request, item_id, action, queue_filter, position or 0))


def _after_decision(request: web.Request, item_id: str, action: Action, queue_filter: QueueFilter, at: int) -> str:
    """The next pending item at the decided one's place (or, at the end of the queue, its start)."""
    found = _neighbour(request, queue_filter, item_id, at, decided=action)
    if found is None and at:
        found = _neighbour(request, queue_filter, item_id, 0, decided=action)
    return found or f"/?{queue_query(queue_filter)}"


def _neighbour(
    request: web.Request, queue_filter: QueueFilter, item_id: str, offset: int, *, decided: str | None = None
) -> str | None:
    """The link to the first pending item other than ``item_id`` from ``offset`` on, if any (``decided``:
    the action just taken on ``item_id``, for the page's notice)."""
    extra = {} if decided is None else {"decided": decided}
    if offset < 0:
        return None
    found = pending_for(context(request).service, current_user(request), queue_filter, offset=offset, limit=2)
    for index, other in enumerate(found.items):
        if other.item_id != item_id:
            return f"/items/{other.item_id}?{queue_query(queue_filter, at=offset + index, **extra)}"
    return None


def _view(
    request: web.Request,
    item: ReviewItem,
    queue_filter: QueueFilter,
    position: int | None,
    *,
    problem: str | None = None,
    notice: str | None = None,
) -> ItemView:
    prev_href = None if position is None else _neighbour(request, queue_filter, item.item_id, position - 1)
    next_href = _neighbour(request, queue_filter, item.item_id, 0 if position is None else position + 1)
    now_ms = wall_clock_ms()
    return ItemView(queue_filter, position or 0, prev_href, next_href, now_ms, problem=problem, notice=notice)


def _position(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and len(raw) < 10 else None
