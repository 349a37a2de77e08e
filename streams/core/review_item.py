"""The human review queue's vocabulary: items, decisions, and the port the review service offers to its
web pages, its JSON API and `keel review` commands.

Pure: plain values and a Protocol, no I/O. A review item is a record of ``<agent>.review`` (schema
``keel.review-value``); a decision is a record of ``keel.review.decisions`` (``keel.review-decisions-value``),
keyed by the item's id (its event id, with the pass when it is not the first: ``ReviewItem.item_id``).
The first decision on an item in the decisions log is the one applied; a later one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Action = Literal["approve", "reject", "edit"]
ACTIONS: tuple[Action, ...] = ("approve", "reject", "edit")
Route = Literal["review", "flag"]


def as_action(value: object) -> Action | None:
    """``value`` as an action, if it names one."""
    return next((action for action in ACTIONS if action == value), None)


@dataclass(frozen=True, slots=True)
class ReviewAttempt:
    number: int
    purpose: str
    provider: str
    model: str
    model_version: str | None
    outcome: str
    latency_ms: float


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One item in the queue: everything a reviewer needs to decide."""

    event_id: str
    agent: str
    agent_version: str
    config_version: str
    tenant: str
    business_key: str
    occurred_at_ms: int
    created_at_ms: int
    route: Route
    rule: str | None  # the handoff rule that chose the route; None: the reliability policy did (see reason)
    reason: str  # stable code: why a human is asked (e.g. handoff_rule, qa_sample, model_refused)
    message: str
    request_payload: str  # the event's payload, JSON
    prompt: tuple[tuple[str, str], ...]  # (role, content)
    attempts: tuple[ReviewAttempt, ...]
    output_json: str | None  # the validated output awaiting approval, when there is one
    warnings: tuple[str, ...]
    trace_id: str | None
    input_topic: str
    input_partition: int
    input_offset: int
    input_key: bytes | None
    input_value: bytes
    output_model: str | None  # provider/model that produced output_json
    output_model_version: str | None
    rerun_pass: int = 1  # the pass a re-run after a rejection is (the record's keel.review.pass header)
    skipped_models: tuple[str, ...] = ()  # provider/models the item's pass already left out (earlier re-runs)

    @property
    def item_id(self) -> str:
        """The event id for an item of the event's first pass, ``<event id>~<pass>`` for a later one (a
        re-run, a retry tier): each pass held for a human is its own item, with its own first decision."""
        held_pass = self.rerun_pass - 1
        return self.event_id if held_pass < 1 else f"{self.event_id}~{held_pass}"


@dataclass(frozen=True, slots=True)
class DecisionDraft:
    """What a reviewer asks for, before the service checks it."""

    item_id: str
    action: Action
    reviewer: str
    reason: str | None = None  # required for reject
    output_json: str | None = None  # required for edit


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision the service accepted and wrote to the decisions topic."""

    decision_id: str
    item_id: str
    agent: str
    config_version: str
    route: Route
    action: Action
    reviewer: str
    decided_at_ms: int
    reason: str | None
    output_json: str | None  # for edit: the corrected output, already validated


@dataclass(frozen=True, slots=True)
class ItemState:
    item: ReviewItem
    decision: Decision | None  # None: pending


@dataclass(frozen=True, slots=True)
class Page:
    items: tuple[ReviewItem, ...]  # oldest first
    total: int  # pending items matching the filter, over all pages
    offset: int
    limit: int


class Refused(Exception):
    """A decision the service will not take. ``code`` is stable for API clients (the HTTP status follows
    from it): no_such_item (404), already_decided (409), invalid_edit / missing_reason / bad_request (422),
    forbidden (403)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReviewService(Protocol):
    """What the web pages, the JSON API and the CLI ask of the queue."""

    def agents(self) -> list[str]:
        """Agents with a review topic, sorted."""
        ...

    def pending(self, *, agents: frozenset[str] | None, min_age_s: float = 0, offset: int = 0, limit: int = 50) -> Page:
        """Pending items of ``agents`` (None: all) waiting at least ``min_age_s``, oldest first."""
        ...

    def get(self, item_id: str) -> ItemState | None: ...

    async def decide(self, draft: DecisionDraft) -> Decision:
        """Validate (an edit against the agent's output schema), write to the decisions topic and wait
        until the broker has it. Raises ``Refused``."""
        ...
