"""What the review pages and the JSON API share: reading the queue filter from a query string, which
agents a user may see, and the HTTP status each refusal maps to. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from streams.core.review_item import ACTIONS, Action, Page, Refused, ReviewService, as_action
from streams.review.users import User

PAGE_SIZE = 50
MAX_LIMIT = 200

REFUSAL_STATUS = {
    "bad_request": 422,
    "invalid_edit": 422,
    "missing_reason": 422,
    "forbidden": 403,
    "no_such_item": 404,
    "already_decided": 409,
}


class Problem(Exception):
    """A request the server answers with a 4xx: ``code`` is stable, ``message`` says what to change."""

    def __init__(self, status: int, code: str, message: str, *, logged_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.logged_code = code if logged_code is None else logged_code  # the access log's, when it knows more

    @classmethod
    def from_refusal(cls, refused: Refused) -> Problem:
        return cls(REFUSAL_STATUS.get(refused.code, 422), refused.code, refused.message)


@dataclass(frozen=True, slots=True)
class QueueFilter:
    agent: str | None  # None: every agent the user may review
    min_age_s: float
    offset: int
    limit: int


def parse_filter(query: Mapping[str, str], *, paged_by: str) -> QueueFilter:
    """The filter in ``query``: ``agent``, ``min_age_s`` and either ``page`` (1-based, pages of 50; the UI)
    or ``offset`` and ``limit`` (the API), as ``paged_by`` says. Raises ``Problem`` (400)."""
    agent = query.get("agent") or None
    min_age_s = _number(query, "min_age_s", 0.0, minimum=0.0)
    if paged_by == "page":
        page = int(_number(query, "page", 1, minimum=1, integer=True))
        return QueueFilter(agent, min_age_s, (page - 1) * PAGE_SIZE, PAGE_SIZE)
    offset = int(_number(query, "offset", 0, minimum=0, integer=True))
    limit = int(_number(query, "limit", PAGE_SIZE, minimum=1, integer=True))
    if limit > MAX_LIMIT:
        raise Problem(400, "bad_query", f"limit must be at most {MAX_LIMIT}")
    return QueueFilter(agent, min_age_s, offset, limit)


def _number(query: Mapping[str, str], name: str, default: float, *, minimum: float, integer: bool = False) -> float:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(int(raw)) if integer else float(raw)
    except ValueError:
        raise Problem(400, "bad_query", f"{name} must be {'an integer' if integer else 'a number'}") from None
    if not value >= minimum or value == float("inf"):
        raise Problem(400, "bad_query", f"{name} must be at least {minimum:g}")
    return value


def visible_agents(user: User, agents: list[str]) -> list[str]:
    """The agents with a queue that ``user`` may review, sorted."""
    return sorted(agent for agent in agents if user.may_review(agent))


def agent_scope(user: User, agent: str | None) -> frozenset[str] | None:
    """The agents to ask the queue for: ``agent`` alone when given (403 if not the user's), else all the
    user's agents (None for an admin: every agent)."""
    if agent is None:
        return user.agent_filter()
    require_agent(user, agent)
    return frozenset({agent})


def require_agent(user: User, agent: str) -> None:
    if not user.may_review(agent):
        raise Problem(403, "forbidden", f"{user.name} may not review agent {agent}")


def pending_for(
    service: ReviewService,
    user: User,
    queue_filter: QueueFilter,
    *,
    offset: int | None = None,
    limit: int | None = None,
) -> Page:
    """The pending items under ``queue_filter`` that ``user`` may review (``offset``/``limit``: other
    than the filter's own, to look around one item)."""
    return service.pending(
        agents=agent_scope(user, queue_filter.agent),
        min_age_s=queue_filter.min_age_s,
        offset=queue_filter.offset if offset is None else offset,
        limit=queue_filter.limit if limit is None else limit,
    )


def parse_action(value: object) -> Action:
    """The action a decision request names. Raises ``Problem`` (400)."""
    action = as_action(value)
    if action is None:
        raise Problem(400, "unknown_action", f"action must be one of {', '.join(ACTIONS)}")
    return action
