"""What every review handler reaches through the aiohttp app and request: the service, the users, the
session table, the access log, and who is asking."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from streams.review import ReviewService
from streams.review_access import AccessLog
from streams.review_auth import User, UserFile
from streams.review_sessions import LoginThrottle, Session, SessionTable


@dataclass(slots=True)
class ReviewContext:
    service: ReviewService
    users: UserFile
    access: AccessLog
    sessions: SessionTable
    throttle: LoginThrottle
    secure_cookies: bool  # set behind HTTPS so the browser never sends the session in clear


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


def html_response(text: str, *, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def form_text(form: Mapping[str, object], name: str) -> str | None:
    """A form field's text; None when the form lacks it (or holds a file there)."""
    value = form.get(name)
    return value if isinstance(value, str) else None
