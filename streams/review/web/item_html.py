"""The review item page: input, output and trace side by side, then approve / reject / edit.

Pure string building. The three decision forms post to the same address with a hidden ``action``; each
carries the session's CSRF token and the reviewer's place in the queue (``at`` and the filter) so that
after a decision the server can open the next pending item.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from streams.core.review_item import Decision, ItemState, ReviewAttempt, ReviewItem
from streams.review.web.html import Viewer, age_text, csrf_field, esc, frame, queue_query
from streams.review.web.query import QueueFilter


@dataclass(frozen=True, slots=True)
class ItemView:
    """Where the item sits in the reviewer's queue, and what to show again after a refused decision."""

    queue_filter: QueueFilter
    position: int
    prev_href: str | None
    next_href: str | None
    now_ms: int
    problem: str | None = None
    notice: str | None = None
    reason_text: str = ""
    output_text: str | None = None  # None: the item's own output


def pretty_json(text: str | None) -> str:
    """Indented JSON for reading; text that is not JSON is shown as it is."""
    if text is None:
        return ""
    try:
        return orjson.dumps(orjson.loads(text), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return text


def item_page(viewer: Viewer, state: ItemState, view: ItemView) -> str:
    item = state.item
    banner = f'<div class="error" role="alert" id="problem">{esc(view.problem)}</div>' if view.problem else ""
    if view.notice:
        banner += f'<div class="notice" id="notice">{esc(view.notice)}</div>'
    decided = _decision_box(state.decision) if state.decision else _forms(viewer, item, view)
    body = (
        f"{banner}<h1>{esc(item.agent)} · {esc(item.business_key)} "
        f'<span class="muted">({esc(item.route)})</span></h1>{_summary(item, view.now_ms)}{_nav(view)}'
        '<div class="panes"><section class="pane" id="input"><h2>Input</h2>'
        f"<pre>{esc(pretty_json(item.request_payload))}</pre></section>"
        f'<section class="pane" id="output"><h2>Output</h2>{_output(item)}</section>'
        f'<section class="pane" id="trace"><h2>Trace</h2>{_attempts(item.attempts)}{_prompt(item.prompt)}'
        f"</section></div>{decided}"
    )
    return frame(f"{item.agent} {item.business_key}", body, viewer=viewer, page="item")


def _summary(item: ReviewItem, now_ms: int) -> str:
    facts = [
        ("item", item.item_id),
        ("waiting", age_text(now_ms - item.created_at_ms)),
        ("rule", item.rule or "-"),
        ("reason", item.reason),
        ("tenant", item.tenant),
        ("config", item.config_version),
        ("model", item.output_model or "-"),
    ]
    text = " · ".join(f'<span class="muted">{name}</span> {esc(value)}' for name, value in facts)
    warnings = "".join(f"<li>{esc(w)}</li>" for w in item.warnings)
    return f'<p id="summary">{text}</p><p>{esc(item.message)}</p>' + (f"<ul>{warnings}</ul>" if warnings else "")


def _nav(view: ItemView) -> str:
    links = ['<a href="/?' + esc(queue_query(view.queue_filter)) + '">queue <kbd>q</kbd></a>']
    if view.prev_href:
        links.append(f'<a id="prev-item" href="{esc(view.prev_href)}">← previous <kbd>k</kbd></a>')
    if view.next_href:
        links.append(f'<a id="next-item" href="{esc(view.next_href)}">next <kbd>j</kbd>/<kbd>n</kbd> →</a>')
    return f'<nav class="pages">{"".join(links)}</nav>'


def _output(item: ReviewItem) -> str:
    if item.output_json is None:
        return '<p class="muted">No validated output: the model did not produce one.</p>'
    return f"<pre>{esc(pretty_json(item.output_json))}</pre>"


def _attempts(attempts: tuple[ReviewAttempt, ...]) -> str:
    rows = "".join(
        f"<tr><td>{a.number}</td><td>{esc(a.purpose)}</td><td>{esc(a.provider)}/{esc(a.model)}</td>"
        f'<td>{esc(a.outcome)}</td><td class="num">{a.latency_ms:.0f} ms</td></tr>'
        for a in attempts
    )
    return f"<table><tr><th>#</th><th>purpose</th><th>model</th><th>outcome</th><th>latency</th></tr>{rows}</table>"


def _prompt(prompt: tuple[tuple[str, str], ...]) -> str:
    return "".join(f'<h2 class="muted">{esc(role)}</h2><pre>{esc(content)}</pre>' for role, content in prompt)


def _decision_box(decision: Decision) -> str:
    detail = f": {esc(decision.reason)}" if decision.reason else ""
    return (
        f'<div class="decided" id="decision">Decided: <b>{esc(decision.action)}</b> by {esc(decision.reviewer)}'
        f"{detail}</div>"
    )


def _forms(viewer: Viewer, item: ReviewItem, view: ItemView) -> str:
    action = f"/items/{esc(item.item_id)}/decision"
    hidden = csrf_field(viewer) + "".join(
        f'<input type="hidden" name="{name}" value="{esc(value)}">'
        for name, value in (
            ("at", view.position),
            ("agent", view.queue_filter.agent or ""),
            ("min_age_s", f"{view.queue_filter.min_age_s:g}"),
        )
    )
    output = pretty_json(item.output_json) if view.output_text is None else view.output_text
    return (
        f'<div class="actions"><form method="post" action="{action}" id="approve-form">{hidden}'
        '<input type="hidden" name="action" value="approve"><h2>Approve</h2><p class="muted">Emit the output as is.</p>'
        '<button type="submit" id="approve">Approve <kbd>a</kbd></button></form>'
        f'<form method="post" action="{action}" id="reject-form">{hidden}<input type="hidden" name="action"'
        ' value="reject"><h2>Reject</h2><textarea name="reason" id="reject-reason" rows="4" required'
        f' placeholder="Why (required)">{esc(view.reason_text)}</textarea>'
        '<button type="submit" id="reject">Reject <kbd>r</kbd></button></form>'
        f'<form method="post" action="{action}" id="edit-form">{hidden}<input type="hidden" name="action"'
        ' value="edit"><h2>Edit</h2><textarea name="output" id="edit-output" rows="10" spellcheck="false">'
        f"{esc(output)}</textarea>"
        '<button type="submit" id="edit">Save edit <kbd>e</kbd>, <kbd>Ctrl</kbd>+<kbd>Enter</kbd></button></form></div>'
    )
