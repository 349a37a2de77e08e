"""An in-memory ``ReviewService`` for the web UI's and API's tests, refusing what the Kafka-backed one
refuses: no_such_item, already_decided, missing_reason (reject without a reason) and invalid_edit (not
JSON, not an object, or missing a field the agent's Avro output schema requires).

It keeps every draft it was asked (``drafts``) and every decision it accepted (``decisions``), so tests
can check who asked for what.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from review_samples import item_with

from streams.core.review_item import Decision, DecisionDraft, ItemState, Page, Refused, ReviewAttempt, ReviewItem
from streams.core.settings import REPO_ROOT


@cache
def required_output_fields(agent: str) -> frozenset[str]:
    """Fields of the agent's output schema that are neither nullable nor defaulted (none if unknown)."""
    path = REPO_ROOT / "schemas" / "agents" / f"{agent}.avsc"
    if not path.exists():
        return frozenset()
    fields = json.loads(path.read_text())["fields"]
    return frozenset(
        f["name"] for f in fields if "default" not in f and not (isinstance(f["type"], list) and "null" in f["type"])
    )


class InMemoryReviewService:
    def __init__(self, items: Iterable[ReviewItem] = (), *, clock_ms: Callable[[], int] | None = None) -> None:
        self.items: dict[str, ReviewItem] = {}
        self.decisions: dict[str, Decision] = {}
        self.drafts: list[DecisionDraft] = []
        self.clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._order: list[ReviewItem] | None = None
        for item in items:
            self.add(item)

    def add(self, item: ReviewItem) -> None:
        self.items[item.item_id] = item
        self._order = None

    def remove(self, item_id: str) -> None:
        """As if the item had left the queue for good (e.g. its topic's retention ran out)."""
        self.items.pop(item_id, None)
        self._order = None

    def agents(self) -> list[str]:
        return sorted({item.agent for item in self.items.values()})

    def pending(self, *, agents: frozenset[str] | None, min_age_s: float = 0, offset: int = 0, limit: int = 50) -> Page:
        if self._order is None:
            self._order = sorted(self.items.values(), key=lambda i: (i.created_at_ms, i.item_id))
        newest_ms = self.clock_ms() - min_age_s * 1000
        matching = [
            item
            for item in self._order
            if item.item_id not in self.decisions
            and (agents is None or item.agent in agents)
            and item.created_at_ms <= newest_ms
        ]
        return Page(tuple(matching[offset : offset + limit]), len(matching), offset, limit)

    def get(self, item_id: str) -> ItemState | None:
        item = self.items.get(item_id)
        return None if item is None else ItemState(item, self.decisions.get(item_id))

    async def decide(self, draft: DecisionDraft) -> Decision:
        self.drafts.append(draft)
        item = self.items.get(draft.item_id)
        if item is None:
            raise Refused("no_such_item", f"no review item {draft.item_id}")
        if draft.item_id in self.decisions:
            earlier = self.decisions[draft.item_id]
            raise Refused("already_decided", f"already decided: {earlier.action} by {earlier.reviewer}")
        if draft.action == "reject" and not (draft.reason or "").strip():
            raise Refused("missing_reason", "a rejection needs a reason")
        output_json = draft.output_json
        if draft.action == "edit":
            output_json = _validated_edit(item.agent, draft.output_json)
        decision = Decision(
            decision_id=str(uuid.uuid4()),
            item_id=item.item_id,
            agent=item.agent,
            config_version=item.config_version,
            route=item.route,
            action=draft.action,
            reviewer=draft.reviewer,
            decided_at_ms=self.clock_ms(),
            reason=draft.reason,
            output_json=output_json if draft.action == "edit" else None,
        )
        self.decisions[item.item_id] = decision
        return decision


def _validated_edit(agent: str, output_json: str | None) -> str:
    if not output_json:
        raise Refused("invalid_edit", "an edit needs the corrected output")
    try:
        output = json.loads(output_json)
    except ValueError as exc:
        raise Refused("invalid_edit", f"the edited output is not JSON: {exc}") from None
    if not isinstance(output, dict):
        raise Refused("invalid_edit", "the edited output must be a JSON object")
    missing = sorted(required_output_fields(agent) - set(output))
    if missing:
        raise Refused("invalid_edit", f"the edited output lacks required field(s): {', '.join(missing)}")
    return json.dumps(output, separators=(",", ":"))


_serial = itertools.count(1)

TRIAGE_OUTPUT = {
    "category": "billing",
    "priority": "high",
    "summary": "Charged twice this month.",
    "suggested_reply": "Sorry about that; we will refund the duplicate charge.",
    "confidence": 0.55,
}


def make_item(
    *, agent: str = "support_triage", created_at_ms: int | None = None, item_id: str | None = None, **fields: Any
) -> ReviewItem:
    """A realistic review item; any field may be overridden."""
    number = next(_serial)
    values: dict[str, Any] = {
        "event_id": item_id or str(uuid.uuid4()),
        "agent": agent,
        "agent_version": "1",
        "config_version": "cfg-1",
        "tenant": "acme-retail",
        "business_key": f"T-{number:05d}",
        "occurred_at_ms": created_at_ms or 1_800_000_000_000,
        "created_at_ms": created_at_ms if created_at_ms is not None else int(time.time() * 1000) - 60_000 + number,
        "route": "review",
        "rule": "confidence_below_0.7",
        "reason": "handoff_rule",
        "message": "confidence 0.55 is below 0.7",
        "request_payload": json.dumps({"ticket_id": f"T-{number:05d}", "subject": "Charged twice", "body": "<b>x</b>"}),
        "prompt": (("system", "You are a support triage assistant."), ("user", "Ticket T-1: Charged twice")),
        "attempts": (ReviewAttempt(1, "initial", "sim", "sim-small", "sim-small-2026", "ok", 812.0),),
        "output_json": json.dumps(TRIAGE_OUTPUT),
        "input_topic": "support.tickets",
        "input_offset": number,
        "input_key": b"T-1",
        "input_value": b"\x00\x00\x00\x00\x01",
        "output_model": "sim/sim-small",
        "output_model_version": "sim-small-2026",
    }
    return item_with(**{**values, **fields})
