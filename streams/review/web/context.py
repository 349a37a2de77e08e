"""What every review handler reaches through the aiohttp app and request: the service, the users, the
session table, the access log, and who is asking."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from aiohttp import web

from streams.core.review_item import ReviewService
from streams.review.sessions import CheckSlots, LoginThrottle, Session, SessionTable
from streams.review.users import User, UserFile
from streams.review.web.access_log import AccessLog


@dataclass(slots=True)
class ReviewContext:
    service: ReviewService
    users: UserFile
    access: AccessLog
    sessions: SessionTable
    throttle: LoginThrottle
    check_slots: CheckSlots
    secure_cookies: bool  # set behind HTTPS so the browser never sends the session in clear
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()  # whose X-Forwarded-For counts


CONTEXT = web.AppKey("keel_review_context", ReviewContext)
USER = web.RequestKey("keel_review_user", User)
SESSION = web.RequestKey("keel_review_session", Session)


def context(request: web.Request) -> ReviewContext:
    return request.app[CONTEXT]


def current_user(request: web.Request) -> User:
    """The authenticated user; the auth middleware has set it on every route that is not public."""
    return request[USER]


def client_address(request: web.Request) -> str:
    """Who is asking, for the login throttle and the access log (see ``forwarded_client``)."""
    forwarded = request.headers.getall("X-Forwarded-For", [])
    return forwarded_client(request.remote, forwarded, trusted=context(request).trusted_proxies)


def forwarded_client(
    peer: str | None, forwarded_for: Sequence[str], *, trusted: Sequence[IPv4Network | IPv6Network]
) -> str:
    """The client's address: the socket's peer, unless that is a trusted proxy; then the rightmost hop of
    ``X-Forwarded-For`` (all its headers, in order) that is not one, since each proxy appends the address
    it saw and anything further left is whatever the client chose to send. A hop that is not an address
    stops the walk at the last proxy that was sure. Without trusted proxies the header is ignored."""
    address = _address(peer or "")
    if address is None:
        return peer or "unknown"
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    while hops and any(address in network for network in trusted):
        hop = _address(hops.pop())
        if hop is None:
            break
        address = hop
    return str(address)


def _address(text: str) -> IPv4Address | IPv6Address | None:
    """An address as proxies write it (``203.0.113.7``, ``2001:db8::7``, with a port: ``203.0.113.7:4711``,
    ``[2001:db8::7]:4711``); an IPv4 address mapped into IPv6 as the IPv4 one. None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = address.ipv4_mapped if isinstance(address, IPv6Address) else None
    return mapped or address


def html_response(text: str, *, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def form_text(form: Mapping[str, object], name: str) -> str | None:
    """A form field's text; None when the form lacks it (or holds a file there)."""
    value = form.get(name)
    return value if isinstance(value, str) else None
