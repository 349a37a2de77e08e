"""Server-rendered pages of the review UI: the frame, the login page, the queue, and error pages.

Pure string building; every value from an item or a request goes through ``esc``. The item page is in
``review_item_html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from streams.core.review_item import Page, ReviewItem
from streams.review.users import User
from streams.review.web.query import PAGE_SIZE, QueueFilter

AGE_CHOICES_S = ((0, "any age"), (300, "5 min"), (3600, "1 h"), (4 * 3600, "4 h"), (24 * 3600, "24 h"))


def esc(value: object) -> str:
    return escape(str(value), quote=True)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking, and the token their forms must carry back."""

    user: User
    csrf_token: str


def frame(title: str, body: str, *, viewer: Viewer | None, page: str = "") -> str:
    """A whole HTML document: header (with a logout form when logged in), then ``body``."""
    who = ""
    if viewer is not None:
        role = viewer.user.role
        who = (
            f'<span class="who">{esc(viewer.user.name)} <span class="muted">({esc(role)})</span></span>'
            f'<form method="post" action="/logout">{csrf_field(viewer)}<button type="submit">Log out</button></form>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{esc(title)} · Keel review</title><link rel="stylesheet" href="/assets/review.css">'
        f'<script src="/assets/review.js" defer></script></head><body data-page="{esc(page)}">'
        f'<header><a href="/" id="queue-link"><b>Keel review</b></a>{who}</header><main>{body}</main></body></html>'
    )


def csrf_field(viewer: Viewer) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(viewer.csrf_token)}">'


def login_page(*, token: str, next_path: str, error: str | None = None) -> str:
    problem = f'<div class="error" role="alert">{esc(error)}</div>' if error else ""
    body = (
        f'<form class="login" method="post" action="/login">{problem}<h1>Log in</h1>'
        f'<input type="hidden" name="login_token" value="{esc(token)}">'
        f'<input type="hidden" name="next" value="{esc(next_path)}">'
        '<label>User name <input name="username" id="username" autocomplete="username" required autofocus></label>'
        '<label>Password <input name="password" id="password" type="password" autocomplete="current-password"'
        ' required></label><button type="submit" id="login-submit">Log in</button></form>'
    )
    return frame("Log in", body, viewer=None, page="login")


def error_page(status: int, message: str, *, viewer: Viewer | None) -> str:
    body = (
        f'<h1>{status}</h1><div class="error" role="alert">{esc(message)}</div><p><a href="/">Back to the queue</a></p>'
    )
    return frame(str(status), body, viewer=viewer)


def queue_query(queue_filter: QueueFilter, **extra: str | int) -> str:
    """The query string that keeps the reviewer's filter across pages and items."""
    fields: dict[str, str | int] = {}
    if queue_filter.agent:
        fields["agent"] = queue_filter.agent
    if queue_filter.min_age_s:
        fields["min_age_s"] = f"{queue_filter.min_age_s:g}"
    fields.update(extra)
    return urlencode(fields)


def queue_page(viewer: Viewer, page: Page, queue_filter: QueueFilter, *, agents: list[str], now_ms: int) -> str:
    rows = "".join(_queue_row(item, page.offset + i, queue_filter, now_ms) for i, item in enumerate(page.items))
    table = (
        '<table id="queue"><thead><tr><th class="num">#</th><th>waiting</th><th>agent</th><th>route</th>'
        f"<th>rule / reason</th><th>business key</th><th>message</th></tr></thead><tbody>{rows}</tbody></table>"
        if page.items
        else '<p class="notice" id="empty">Nothing waiting for review with this filter.</p>'
    )
    body = (
        f"<h1>Review queue</h1>{_filter_form(queue_filter, agents)}"
        f'<p id="total"><b>{page.total}</b> pending{_page_note(page)} · keys: <kbd>j</kbd>/<kbd>k</kbd> move, '
        f"<kbd>Enter</kbd> open, <kbd>n</kbd> first item</p>{table}{_pager(page, queue_filter)}"
    )
    return frame("Queue", body, viewer=viewer, page="queue")


def age_text(age_ms: int) -> str:
    seconds = max(0, age_ms) // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _queue_row(item: ReviewItem, position: int, queue_filter: QueueFilter, now_ms: int) -> str:
    href = f"/items/{esc(item.item_id)}?{esc(queue_query(queue_filter, at=position))}"
    why = esc(item.rule) if item.rule else f'<span class="muted">{esc(item.reason)}</span>'
    return (
        f'<tr data-href="{href}" data-item="{esc(item.item_id)}"><td class="num">{position + 1}</td>'
        f"<td>{age_text(now_ms - item.created_at_ms)}</td><td>{esc(item.agent)}</td><td>{esc(item.route)}</td>"
        f'<td>{why}</td><td><a href="{href}">{esc(item.business_key)}</a></td><td>{esc(item.message[:160])}</td></tr>'
    )


def _filter_form(queue_filter: QueueFilter, agents: list[str]) -> str:
    agent_options = '<option value="">all my agents</option>' + "".join(
        f'<option value="{esc(a)}"{" selected" if a == queue_filter.agent else ""}>{esc(a)}</option>' for a in agents
    )
    age_options = "".join(
        f'<option value="{s}"{" selected" if s == queue_filter.min_age_s else ""}>{label}</option>'
        for s, label in AGE_CHOICES_S
    )
    return (
        '<form method="get" action="/" id="filter">Agent <select name="agent" id="agent-filter">'
        f'{agent_options}</select> waiting at least <select name="min_age_s">{age_options}</select> '
        '<button type="submit">Filter</button></form>'
    )


def _page_note(page: Page) -> str:
    if page.total <= page.limit:
        return ""
    pages = (page.total + PAGE_SIZE - 1) // PAGE_SIZE
    return f" · page {page.offset // PAGE_SIZE + 1} of {pages}"


def _pager(page: Page, queue_filter: QueueFilter) -> str:
    number = page.offset // PAGE_SIZE + 1
    links = []
    if page.offset > 0:
        links.append(f'<a id="prev-page" href="/?{esc(queue_query(queue_filter, page=number - 1))}">← previous</a>')
    if page.offset + len(page.items) < page.total:
        links.append(f'<a id="next-page" href="/?{esc(queue_query(queue_filter, page=number + 1))}">next →</a>')
    return f'<nav class="pages">{"".join(links)}</nav>' if links else ""
