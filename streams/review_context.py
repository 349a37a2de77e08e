"""What every review handler reaches through the aiohttp app and request: the service, the users, the
session table, the access log, and who is asking."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from streams.review import ReviewService
from streams.review_access import AccessLog
from streams.review_auth import User, UserFile
from streams.review_sessions import LoginThrottle, Session, SessionTable


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class ReviewContext:
    service: ReviewService
    users: UserFile
    access: AccessLog
    sessions: SessionTable = field(default_factory=SessionTable)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    clock_ms: Callable[[], int] = wall_clock_ms
    secure_cookies: bool = False  # set behind HTTPS so the browser never sends the session in clear


CONTEXT = web.AppKey("keel_review_context", ReviewContext)
USER = web.RequestKey("keel_review_user", User)
SESSION = web.RequestKey("keel_review_session", Session)


def context(request: web.Request) -> ReviewContext:
    return request.app[CONTEXT]


def current_user(request: web.Request) -> User:
    """The authenticated user; the auth middleware has set it on every route that is not public."""
    return request[USER]


def client_address(request: web.Request) -> str:
    return request.remote or "unknown"
