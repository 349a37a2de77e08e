"""The CRM's HTTP API (aiohttp):

    GET  /customers/{id}            a customer (404 when unknown)
    POST /tickets                   open a ticket {customer_id, title, priority?, body?} (201); the same
                                    ``Idempotency-Key`` again answers the ticket it made (200,
                                    ``Idempotent-Replayed: true``), never a second one
    GET  /tickets                   every ticket (tests count them)
    POST /oauth/token               client credentials (basic auth) -> a bearer token, ``expires_in``
    POST /crm/faults                {"fail_next": N, "status": 503, "retry_after_s": 1}: the next N API
                                    calls answer that status
    GET  /health

Every API call needs ``Authorization: Bearer <token>``: the static token the server was started with,
or one it issued at /oauth/token.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import BasicAuth, web

from connectors.crm.customers import Customers


@dataclass
class CrmState:
    customers: Customers
    token: str
    client_id: str = "keel"
    client_secret: str = ""
    token_lifetime_s: int = 300
    tickets: list[dict[str, Any]] = field(default_factory=list)
    by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)
    replays: int = 0
    fail_next: int = 0
    fail_status: int = 503
    retry_after_s: float = 1.0
    requests: int = 0

    def open_ticket(self, fields: Mapping[str, Any], key: str | None) -> tuple[dict[str, Any], bool]:
        """The ticket for ``fields``, and whether it was made earlier under the same key."""
        if key is not None and key in self.by_key:
            self.replays += 1
            return self.by_key[key], True
        ticket = {"ticket_id": f"CRM-{len(self.tickets) + 1:05d}", "status": "open", **fields}
        self.tickets.append(ticket)
        if key is not None:
            self.by_key[key] = ticket
        return ticket, False


def _json(status: int, body: Any, *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return _json(status, {"error": message}, headers=headers)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(state: CrmState) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in ("/health", "/oauth/token") or request.path.startswith("/crm/"):
            return await handler(request)
        state.requests += 1
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not (hmac.compare_digest(bearer, state.token) or bearer in state.issued):
            return _error(401, "missing or unknown bearer token")
        if state.fail_next > 0:
            state.fail_next -= 1
            return _error(state.fail_status, "unavailable (injected)", **{"Retry-After": f"{state.retry_after_s:g}"})
        return await handler(request)

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    routes = [
        ("GET", "/health", _health),
        ("GET", "/customers/{customer_id}", _customer),
        ("POST", "/tickets", _create_ticket),
        ("GET", "/tickets", _tickets),
        ("POST", "/oauth/token", _token),
        ("POST", "/crm/faults", _faults),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, functools.partial(handler, state))
    return app


async def _health(state: CrmState, request: web.Request) -> web.Response:
    return _json(200, {"status": "ok"})


async def _tickets(state: CrmState, request: web.Request) -> web.Response:
    return _json(200, {"tickets": state.tickets, "replays": state.replays})


async def _customer(state: CrmState, request: web.Request) -> web.Response:
    customer = state.customers.get(request.match_info["customer_id"])
    return _json(200, customer) if customer is not None else _error(404, "no such customer")


async def _create_ticket(state: CrmState, request: web.Request) -> web.Response:
    try:
        fields = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "the body must be JSON")
    if not isinstance(fields, dict) or not isinstance(fields.get("title"), str) or not fields["title"].strip():
        return _error(422, "a ticket needs a title")
    customer_id = fields.get("customer_id")
    if customer_id is not None and state.customers.get(str(customer_id)) is None:
        return _error(422, f"no customer {str(customer_id)[:64]!r}")
    ticket, replayed = state.open_ticket(fields, request.headers.get("Idempotency-Key"))
    if replayed:
        return _json(200, ticket, headers={"Idempotent-Replayed": "true"})
    return _json(201, ticket)


async def _token(state: CrmState, request: web.Request) -> web.Response:
    try:
        auth = BasicAuth.decode(request.headers.get("Authorization", ""))
    except ValueError:
        return _error(401, "client authentication failed")
    form = await request.post()
    known = auth.login == state.client_id and hmac.compare_digest(auth.password, state.client_secret)
    if not known or not state.client_secret or form.get("grant_type") != "client_credentials":
        return _error(401, "client authentication failed")
    token = secrets.token_urlsafe(24)
    state.issued.add(token)
    return _json(200, {"access_token": token, "token_type": "Bearer", "expires_in": state.token_lifetime_s})


async def _faults(state: CrmState, request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
        state.fail_next = int(body.get("fail_next", 0))
        state.fail_status = int(body.get("status", 503))
        state.retry_after_s = float(body.get("retry_after_s", 1.0))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return _error(400, 'expected {"fail_next": N, "status": S, "retry_after_s": T}')
    return _json(200, {"fail_next": state.fail_next})


@dataclass
class RunningCrm:
    state: CrmState
    url: str
    _runner: web.AppRunner

    async def stop(self) -> None:
        await self._runner.cleanup()


async def start_crm(state: CrmState, *, host: str = "127.0.0.1", port: int = 0) -> RunningCrm:
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return RunningCrm(state, f"http://{host}:{runner.addresses[0][1]}", runner)


@contextlib.asynccontextmanager
async def run_crm(state: CrmState, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningCrm]:
    crm = await start_crm(state, host=host, port=port)
    try:
        yield crm
    finally:
        await crm.stop()
