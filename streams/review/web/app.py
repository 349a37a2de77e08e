"""The review web server: the UI's pages, the JSON API, and the authentication in front of both.

``build_web_app(service, users)`` returns an aiohttp application; ``keel review serve`` runs it. Every
route is behind the auth middleware unless it is named in ``PUBLIC_ROUTES`` (the login form and the
stylesheet and script): pages want a session cookie (and, for a POST, the session's CSRF token), the
API wants HTTP Basic credentials on each call and never looks at cookies.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler

from streams.core.review_item import ReviewService
from streams.review.sessions import SESSION_COOKIE, CheckSlots, LoginThrottle, SessionTable, csrf_matches
from streams.review.users import User, UserFile
from streams.review.web import api as review_api
from streams.review.web import login as review_login
from streams.review.web import pages as review_pages
from streams.review.web.access_log import AccessLog
from streams.review.web.assets import CSS, JS
from streams.review.web.context import (
    CONTEXT,
    SESSION,
    USER,
    ReviewContext,
    client_address,
    context,
    form_text,
    html_response,
)
from streams.review.web.html import error_page
from streams.review.web.query import Problem

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Only when the cookies are Secure, i.e. the service is reached over HTTPS: the browser then refuses plain
# HTTP to the host for a year, so a first request typed as http:// cannot be intercepted.
HSTS_HEADERS = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains"}


async def _css(_request: web.Request) -> web.Response:
    return web.Response(text=CSS, content_type="text/css")


async def _js(_request: web.Request) -> web.Response:
    return web.Response(text=JS, content_type="text/javascript")


async def _no_icon(_request: web.Request) -> web.Response:
    """Browsers ask for it on their own; answered here rather than with a redirect to the login page."""
    return web.Response(status=204)


# (method, path, handler, name): every route the server has. Tests walk this table to check that each one
# refuses a caller without credentials, so a route added here is covered without more work.
ROUTE_TABLE: tuple[tuple[str, str, Handler, str], ...] = (
    ("GET", "/", review_pages.show_queue, "queue"),
    ("GET", "/items/{item_id}", review_pages.show_item, "item"),
    ("POST", "/items/{item_id}/decision", review_pages.post_decision_form, "decision_form"),
    ("GET", "/login", review_login.login_form, "login_form"),
    ("POST", "/login", review_login.log_in, "login"),
    ("POST", "/logout", review_login.log_out, "logout"),
    ("GET", "/assets/review.css", _css, "css"),
    ("GET", "/assets/review.js", _js, "js"),
    ("GET", "/favicon.ico", _no_icon, "favicon"),
    ("GET", "/api/v1/items", review_api.list_items, "api_items"),
    ("GET", "/api/v1/items/{item_id}", review_api.get_item, "api_item"),
    ("POST", "/api/v1/items/{item_id}/decision", review_api.post_decision, "api_decision"),
)
METRICS_ROUTE = "metrics"  # added by `keel review serve` (streams/apps/review/shell.py): counts for Prometheus
PUBLIC_ROUTES = frozenset({"login_form", "login", "css", "js", "favicon", METRICS_ROUTE})


def build_web_app(
    service: ReviewService,
    users: UserFile,
    *,
    sessions: SessionTable | None = None,
    throttle: LoginThrottle | None = None,
    check_slots: CheckSlots | None = None,
    secure_cookies: bool = False,
    trusted_proxies: Sequence[IPv4Network | IPv6Network] = (),
) -> web.Application:
    """The review UI and API over ``service``, for the users in ``users``; the access lines go to the
    ``keel.review.access`` logger. ``secure_cookies`` marks the session cookie Secure (set it when
    serving behind HTTPS); requests from ``trusted_proxies`` are from the client their X-Forwarded-For
    names (streams/review/web/context.py)."""
    app = web.Application(middlewares=[_headers, _problems, _authenticate])
    app[CONTEXT] = ReviewContext(
        service,
        users,
        AccessLog(),
        SessionTable() if sessions is None else sessions,  # an empty table is falsy: no `or` here
        LoginThrottle() if throttle is None else throttle,
        CheckSlots() if check_slots is None else check_slots,
        secure_cookies,
        tuple(trusted_proxies),
    )
    for method, path, handler, name in ROUTE_TABLE:
        app.router.add_route(method, path, handler, name=name)
    return app


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    headers = SECURITY_HEADERS | HSTS_HEADERS if context(request).secure_cookies else SECURITY_HEADERS
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and aiohttp's own errors are responses too
        exc.headers.update(headers)
        raise
    response.headers.update(headers)
    return response


@web.middleware
async def _problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A ``Problem`` becomes JSON under /api/, an error page elsewhere; aiohttp's own 4xx under /api/ too."""
    api = request.path.startswith("/api/")
    try:
        return await handler(request)
    except Problem as problem:
        if api:
            response = review_api.problem_response(problem)
            if problem.status == 401:
                response.headers["WWW-Authenticate"] = 'Basic realm="keel review", charset="UTF-8"'
            return response
        viewer = review_pages.viewer(request) if USER in request and SESSION in request else None
        return html_response(error_page(problem.status, problem.message, viewer=viewer), status=problem.status)
    except web.HTTPClientError as exc:
        if not api:
            raise
        return review_api.problem_response(Problem(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason))


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name in PUBLIC_ROUTES:
        return await handler(request)
    if request.path.startswith("/api/"):
        request[USER] = await _basic_user(request)
        return await handler(request)
    ctx = context(request)
    session = ctx.sessions.find(request.cookies.get(SESSION_COOKIE))
    user = ctx.users.get(session.username) if session else None
    if session is not None and (user is None or user.password_fingerprint != session.password_fingerprint):
        ctx.sessions.close(session.session_id)  # its user was removed or has a new password: it is over
        session = None
    if session is None or user is None:  # no session, or an expired one
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    request[USER], request[SESSION] = user, session
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        if not csrf_matches(session, form_text(form, "csrf")):
            ctx.access.record("csrf_refused", user=user.name, path=request.path, remote=client_address(request))
            raise Problem(403, "csrf", "This form's security token is missing or out of date; reload and try again.")
    return await handler(request)


async def _basic_user(request: web.Request) -> User:
    """The API caller named by HTTP Basic credentials. Raises ``Problem`` 401 (or 429 after many failures)."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise Problem(401, "unauthenticated", "send HTTP Basic credentials of a Keel reviewer")
    try:
        name, separator, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        name, separator, password = "", "", ""
    user = await review_login.check_password(request, name, password if separator else "", via="api")
    if user is None:
        raise Problem(401, "unauthenticated", "unknown user name or wrong password")
    return user
