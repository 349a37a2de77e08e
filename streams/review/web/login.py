"""Logging in and out of the review UI, and the password check the API shares.

The login form is protected against login CSRF (a foreign page logging the browser in as someone else)
by a double-submit token: a random value both in a cookie scoped to /login and in the form, which must
match. A failed login says only that the name or the password was wrong, is slowed down, and counts
towards the throttle; every attempt is on the access log.
"""

from __future__ import annotations

import asyncio
import secrets

from aiohttp import web

from streams.review.sessions import SESSION_COOKIE, tokens_match
from streams.review.users import User
from streams.review.web.context import SESSION, client_address, context, form_text, html_response
from streams.review.web.html import login_page
from streams.review.web.query import Problem

LOGIN_COOKIE = "keel_review_login"
_TOKEN_CHARS = 32  # secrets.token_urlsafe(24)
_BAD_CREDENTIALS = "Unknown user name or wrong password."


async def check_password(request: web.Request, name: str, password: str, *, via: str) -> User | None:
    """The user these credentials belong to, or None (after the failure delay). Raises ``Problem`` 429
    while the name or the client's address has failed too often.

    The attempt is counted as a failure before the check and taken back when it succeeds (see
    ``LoginThrottle``); the check waits for one of the address's few slots (``CheckSlots``) and runs in
    an executor, since an scrypt would stop the event loop for half a second."""
    ctx, address = context(request), client_address(request)
    attempt = ctx.throttle.reserve(name, address)
    if attempt is None:
        ctx.access.record("login_failed", user=name[:64], via=via, remote=address, reason="throttled")
        raise Problem(429, "too_many_failures", "Too many failed logins; wait a few minutes and try again.")
    async with ctx.check_slots.slot(address):
        user = await asyncio.get_running_loop().run_in_executor(None, ctx.users.authenticate, name, password)
    if user is None:
        ctx.access.record("login_failed", user=name[:64], via=via, remote=address, reason="bad_credentials")
        await asyncio.sleep(ctx.throttle.failure_delay_s)
    else:
        ctx.throttle.succeeded(attempt)
    return user


async def login_form(request: web.Request) -> web.Response:
    return _form(request, next_path=_local_path(request.query.get("next")))


async def log_in(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    form = await request.post()
    next_path = _local_path(form_text(form, "next"))
    if not tokens_match(request.cookies.get(LOGIN_COOKIE, ""), form_text(form, "login_token")):
        ctx.access.record("login_failed", via="ui", remote=client_address(request), reason="bad_login_token")
        return _form(request, next_path=next_path, error="The login form expired; please try again.", status=403)
    try:
        user = await check_password(
            request, form_text(form, "username") or "", form_text(form, "password") or "", via="ui"
        )
    except Problem as problem:
        return _form(request, next_path=next_path, error=problem.message, status=problem.status)
    if user is None:
        return _form(request, next_path=next_path, error=_BAD_CREDENTIALS, status=401)
    session = ctx.sessions.open(user.name, password_fingerprint=user.password_fingerprint)
    ctx.access.record("login", user=user.name, via="ui", remote=client_address(request))
    response = web.HTTPSeeOther(next_path)
    response.set_cookie(
        SESSION_COOKIE,
        session.session_id,
        httponly=True,
        samesite="Strict",
        secure=ctx.secure_cookies,
        path="/",
        max_age=int(min(ctx.sessions.idle_timeout_s, ctx.sessions.max_age_s)),
    )
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


async def log_out(request: web.Request) -> web.StreamResponse:
    """POST only, with the CSRF token (the middleware checks it): a link elsewhere cannot log anyone out."""
    ctx, session = context(request), request[SESSION]
    ctx.sessions.close(session.session_id)
    ctx.access.record("logout", user=session.username, remote=client_address(request))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def _form(request: web.Request, *, next_path: str, error: str | None = None, status: int = 200) -> web.Response:
    # The browser's token is kept while it lasts: a second login page (another tab, or a favicon request
    # sent to the login page) must not invalidate the form already on screen.
    kept = request.cookies.get(LOGIN_COOKIE, "")
    token = kept if len(kept) == _TOKEN_CHARS and kept.replace("-", "").replace("_", "").isalnum() else _new_token()
    response = html_response(login_page(token=token, next_path=next_path, error=error), status=status)
    secure = context(request).secure_cookies
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/login", max_age=3600
    )
    return response


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def _local_path(raw: str | None) -> str:
    """Where to go after logging in: only a path on this server (never ``//host`` or a full URL). Control
    characters are refused too: a URL parser drops tabs and newlines, so ``/<tab>/host`` would be ``//host``."""
    if raw and raw.startswith("/") and not raw.startswith("//") and "\\" not in raw and raw.isprintable():
        return raw
    return "/"
