"""The CRM's MCP twin (the official SDK's ``MCPServer``): the tools ``lookup_customer`` and
``create_ticket`` over the same ``CrmState`` as the HTTP API. ``create_ticket`` honours the
``keel/idempotency_key`` of the request's ``_meta``: asked again with one key, it answers the ticket it
made. Over stdio the state is a JSON file (``--state-file``), written after each ticket, so a test can
count the tickets and a restarted server keeps its keys.

    python -m connectors.crm.mcp_server --state-file /tmp/crm.json
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from connectors.crm.customers import Customers, account
from connectors.crm.server import CrmState
from connectors.tools.mcp import IDEMPOTENCY_META


def build_server(state: CrmState, *, state_file: Path | None = None) -> MCPServer:
    """The tools are coroutines with no await: the SDK runs a plain function in a worker thread, and
    concurrent calls would race on the state and its file; on the event loop each runs whole."""
    server = MCPServer("keel-crm")

    @server.tool(description="The customer's CRM record (account status, plan, lifetime value), by customer id")
    async def lookup_customer(customer_id: str) -> dict[str, Any]:
        customer = state.customers.get(customer_id)
        if customer is None:
            raise ToolError(f"no customer {customer_id[:64]!r}")
        return customer

    @server.tool(description="Open a follow-up ticket in the CRM for the customer; answers the ticket")
    async def create_ticket(
        customer_id: str, title: str, ctx: Context, priority: str | None = None, body: str | None = None
    ) -> dict[str, Any]:
        if state.customers.get(customer_id) is None:
            raise ToolError(f"no customer {customer_id[:64]!r}")
        fields = {k: v for k, v in (("customer_id", customer_id), ("title", title), ("priority", priority),
                                    ("body", body)) if v is not None}  # fmt: skip
        ticket, _ = state.open_ticket(fields, _key(ctx))
        if state_file is not None:
            save(state, state_file)
        return ticket

    return server


def _key(ctx: Context) -> str | None:
    meta: Any = ctx.request_context.meta or {}
    found = meta.get(IDEMPOTENCY_META) if isinstance(meta, dict) else None
    return found if isinstance(found, str) else None


def save(state: CrmState, path: Path) -> None:
    document = {"tickets": state.tickets, "by_key": state.by_key, "replays": state.replays}
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(document))
    temporary.replace(path)


def load(path: Path, customers: Customers) -> CrmState:
    state = CrmState(customers, token="")  # stdio: no HTTP, no token
    if path.exists():
        document = orjson.loads(path.read_bytes())
        state.tickets, state.by_key, state.replays = document["tickets"], document["by_key"], document["replays"]
    return state


def bearer_only(app: Any, token: str) -> Any:
    """``app`` (ASGI) answering 401 to any HTTP request without ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not hmac.compare_digest(
            dict(scope["headers"]).get(b"authorization", b""), expected
        ):
            await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"missing or unknown bearer token"})
            return
        await app(scope, receive, send)

    return guarded


@contextlib.contextmanager
def serving_http(state: CrmState, *, token: str) -> Iterator[str]:
    """The twin over streamable HTTP on a free loopback port, in a thread of its own; yields its URL."""
    app = bearer_only(build_server(state).streamable_http_app(), token)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="crm-mcp-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the CRM's MCP server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-file", type=Path, required=True)
    args = parser.parse_args()
    customers = Customers.from_samples()
    customers.put(account({"id": "C-1", "name": "Zoë Example", "email": "zoe@example.com", "plan": "pro"}))
    build_server(load(args.state_file, customers), state_file=args.state_file).run("stdio")


if __name__ == "__main__":
    main()
