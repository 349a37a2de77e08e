"""The review UI's page handlers: the queue, an item, and a decision posted from an item's forms.

The reviewer's place in the queue travels in the query (``at``: the item's position under the filter),
so previous/next are one ``pending(offset=..., limit=1)`` away, whatever the queue's size. After a
decision the item has left the queue, so the next pending one is found at the same position.
"""

from __future__ import annotations

from dataclasses import replace

from aiohttp import web

from streams.review import ACTIONS, Action, ItemState, ReviewItem
from streams.review_api import log_malformed, submit_decision
from streams.review_context import SESSION, context, current_user
from streams.review_html import Viewer, queue_page, queue_query
from streams.review_item_html import ItemView, item_page
from streams.review_query import Problem, QueueFilter, agent_scope, parse_filter, require_agent, visible_agents


def viewer(request: web.Request) -> Viewer:
    return Viewer(current_user(request), request[SESSION].csrf_token)


async def show_queue(request: web.Request) -> web.Response:
    ctx, user = context(request), current_user(request)
    queue_filter = parse_filter(request.query, paged_by="page")
    scope = agent_scope(user, queue_filter.agent)
    page = ctx.service.pending(
        agents=scope, min_age_s=queue_filter.min_age_s, offset=queue_filter.offset, limit=queue_filter.limit
    )
    agents = visible_agents(user, ctx.service.agents())
    return _html(queue_page(viewer(request), page, queue_filter, agents=agents, now_ms=ctx.clock_ms()))


async def show_item(request: web.Request) -> web.Response:
    state = _state(request, request.match_info["item_id"])
    queue_filter = parse_filter(request.query, paged_by="page")
    decided = request.query.get("decided")
    notice = f"Recorded: {decided} of the previous item." if decided in ACTIONS else None
    view = _view(request, state.item, queue_filter, _position(request.query.get("at")), notice=notice)
    return _html(item_page(viewer(request), state, view))


async def post_decision_form(request: web.Request) -> web.StreamResponse:
    """A decision from the item page's forms (the middleware has checked the CSRF token)."""
    form = await request.post()
    item_id = request.match_info["item_id"]
    queue_filter = parse_filter({k: str(v) for k, v in form.items() if k in ("agent", "min_age_s")}, paged_by="page")
    position = _position(str(form.get("at", "")))
    action, reason, output = form.get("action"), _text(form.get("reason")), _text(form.get("output"))
    if action not in ACTIONS:
        problem = Problem(400, "unknown_action", f"action must be one of {', '.join(ACTIONS)}")
        log_malformed(request, item_id, problem, via="ui")
        raise problem
    try:
        await submit_decision(
            request, item_id, action, reason=reason or None, output_json=output if action == "edit" else None, via="ui"
        )
    except Problem as problem:
        if problem.status in (403, 404):
            raise
        state = _state(request, item_id)
        view = _view(request, state.item, queue_filter, position, problem=problem.message)
        view = replace(view, reason_text=reason or "", output_text=output if action == "edit" else None)
        return _html(item_page(viewer(request), state, view), status=problem.status)
    raise web.HTTPSeeOther(_after_decision(request, item_id, action, queue_filter, position or 0))


def _after_decision(request: web.Request, item_id: str, action: Action, queue_filter: QueueFilter, at: int) -> str:
    """The next pending item at the decided one's place (or, at the end of the queue, its start)."""
    scope = agent_scope(current_user(request), queue_filter.agent)
    service = context(request).service
    for offset in (at, 0):
        page = service.pending(agents=scope, min_age_s=queue_filter.min_age_s, offset=offset, limit=2)
        for index, item in enumerate(page.items):
            if item.item_id != item_id:
                query = queue_query(queue_filter, at=offset + index, decided=action)
                return f"/items/{item.item_id}?{query}"
    return f"/?{queue_query(queue_filter)}"


def _state(request: web.Request, item_id: str) -> ItemState:
    state = context(request).service.get(item_id)
    if state is None:
        raise Problem(404, "no_such_item", f"no review item {item_id} (decided and gone, or never there)")
    require_agent(current_user(request), state.item.agent)
    return state


def _view(
    request: web.Request,
    item: ReviewItem,
    queue_filter: QueueFilter,
    position: int | None,
    *,
    problem: str | None = None,
    notice: str | None = None,
) -> ItemView:
    scope = agent_scope(current_user(request), queue_filter.agent)
    service = context(request).service

    def neighbour(offset: int) -> str | None:
        if offset < 0:
            return None
        found = service.pending(agents=scope, min_age_s=queue_filter.min_age_s, offset=offset, limit=2).items
        others = [(offset + i, other) for i, other in enumerate(found) if other.item_id != item.item_id]
        return f"/items/{others[0][1].item_id}?{queue_query(queue_filter, at=others[0][0])}" if others else None

    prev_href = None if position is None else neighbour(position - 1)
    next_href = neighbour(0 if position is None else position + 1)
    now_ms = context(request).clock_ms()
    return ItemView(queue_filter, position or 0, prev_href, next_href, now_ms, problem=problem, notice=notice)


def _position(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and len(raw) < 10 else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _html(text: str, *, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
