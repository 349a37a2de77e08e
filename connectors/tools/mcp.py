"""A ``ToolClient`` for an MCP server, with the official ``mcp`` SDK: over stdio (the connector's
``command``, started by the worker) or streamable HTTP (``base_url``, with the connector's auth header).

One session per connector, opened on first use in the worker's event loop and owned by a task of its
own (the SDK's task groups must be entered and left by one task); calls from any event share it. A
session that breaks (the server process died, the connection went) is dropped: that call is
``ToolUnavailable``, and the next one opens a new session (a stdio server is started again).

A write tool's idempotency key goes in the request's ``_meta`` as ``keel/idempotency_key`` (MCP keeps
``_meta`` for such out-of-band data; the prefix keeps it apart from other clients' keys): a server that
honours it does the write once. The result's text blocks are the content the model reads (its
structured content as JSON when it has no text); ``isError`` marks a result the tool said failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from typing import Any

import httpx
import httpx2
import orjson
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from connectors.tools.auth import Credentials, credentials
from streams.core.connectors import ConnectorDefinition
from streams.core.errors import ToolAuthFailed, ToolResponseInvalid, ToolTimeout, ToolUnavailable
from streams.core.ports.model import ToolSpec
from streams.core.ports.tools import ToolResult

IDEMPOTENCY_META = "keel/idempotency_key"
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")  # nothing secret


class McpToolClient:
    def __init__(self, definition: ConnectorDefinition, *, env: Mapping[str, str] | None = None) -> None:
        """``env``: what a stdio server's process gets besides a few of the worker's own variables
        (``_PASSED_ENV``); never the worker's whole environment, which holds its secrets."""
        assert definition.kind == "mcp"
        self.connector = definition.name
        self._definition = definition
        self._credentials: Credentials = credentials(definition.auth, connector=definition.name)
        self._env = dict(env or {})
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._token_http: httpx.AsyncClient | None = None  # asks an OAuth token endpoint, if the auth has one
        self._refused = False  # the last HTTP answer was a 401 or 403

    def __repr__(self) -> str:
        return f"McpToolClient(connector={self.connector!r})"

    async def list_tools(self) -> list[ToolSpec]:
        client = await self._session()
        specs: list[ToolSpec] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose pages never end cannot hang the worker's start
            page = await self._guarded(client.list_tools(cursor=cursor), timeout_s=self._definition.timeout_s)
            specs += [ToolSpec(t.name, t.description or t.name, dict(t.input_schema)) for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        return specs

    async def call(
        self, tool: str, arguments: Mapping[str, Any], *, idempotency_key: str, timeout_s: float
    ) -> ToolResult:
        started = time.perf_counter()
        client = await self._session(timeout_s=timeout_s)
        meta: Any = {IDEMPOTENCY_META: idempotency_key}
        result = await self._guarded(client.call_tool(tool, dict(arguments), meta=meta), timeout_s=timeout_s)
        content = _content(result.content, result.structured_content)
        size = len(content.encode())
        if size > self._definition.max_response_bytes:
            limit = self._definition.max_response_bytes
            raise ToolResponseInvalid(f"connector {self.connector} tool {tool}: the answer is over {limit} bytes")
        status = "tool_error" if result.is_error else "ok"
        latency_s = time.perf_counter() - started
        return ToolResult(content, is_error=result.is_error, status=status, response_bytes=size, latency_s=latency_s)

    async def aclose(self) -> None:
        await self._drop()
        if self._token_http is not None:
            await self._token_http.aclose()

    async def _guarded(self, call: Any, *, timeout_s: float) -> Any:
        try:
            async with asyncio.timeout(timeout_s):
                return await call
        except TimeoutError as exc:
            raise ToolTimeout(f"connector {self.connector}: no answer within {timeout_s:g} s") from exc
        except MCPError as exc:
            if self._refused:
                raise ToolAuthFailed(f"connector {self.connector}: the MCP server refused the credentials") from exc
            if exc.code != CONNECTION_CLOSED:  # the server answered with a JSON-RPC error: the call is wrong
                raise ToolResponseInvalid(f"connector {self.connector}: {_clip(exc.error.message)}") from exc
            await self._drop()
            raise ToolUnavailable(f"connector {self.connector}: the MCP server closed the connection") from exc
        except Exception as exc:  # the session broke: a dead process, a lost connection
            await self._drop()
            if self._refused:
                raise ToolAuthFailed(f"connector {self.connector}: the MCP server refused the credentials") from exc
            raise ToolUnavailable(f"connector {self.connector}: {type(exc).__name__}: {_clip(str(exc))}") from exc

    async def _session(self, *, timeout_s: float | None = None) -> Client:
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            if self._client is not None and self._owner is not None and not self._owner.done():
                return self._client
            ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
            self._closing = asyncio.Event()
            self._owner = asyncio.create_task(self._own(ready, self._closing), name=f"mcp-{self.connector}")
            try:
                async with asyncio.timeout(timeout_s or self._definition.timeout_s):
                    self._client = await asyncio.shield(ready)
            except TimeoutError as exc:
                await self._drop()
                raise ToolUnavailable(f"connector {self.connector}: the MCP server did not answer", sent=False) from exc
            except Exception as exc:
                await self._drop()
                if self._refused:
                    raise ToolAuthFailed(f"connector {self.connector}: the MCP server refused the credentials") from exc
                message = f"connector {self.connector}: cannot reach the MCP server: {type(exc).__name__}"
                raise ToolUnavailable(message, sent=False) from exc
            return self._client

    async def _own(self, ready: asyncio.Future[Client], closing: asyncio.Event) -> None:
        """Open the session, hand it over, and keep it until told to close (or it breaks)."""
        try:
            async with Client(await self._target(), mode="legacy") as client:
                ready.set_result(client)
                await closing.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)

    async def _target(self) -> StdioServerParameters | Any:
        definition = self._definition
        if definition.transport == "stdio":
            assert definition.command
            env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ} | self._env
            return StdioServerParameters(command=definition.command[0], args=definition.command[1:], env=env)
        assert definition.base_url is not None
        headers = {}
        self._token_http = self._token_http or httpx.AsyncClient()
        header = await self._credentials.header(self._token_http, timeout_s=definition.timeout_s)
        if header is not None:
            headers["Authorization"] = header

        async def note(response: httpx2.Response) -> None:  # the SDK reports a 401 as a plain error
            self._refused = response.status_code in (401, 403)

        http = httpx2.AsyncClient(headers=headers, timeout=definition.timeout_s, event_hooks={"response": [note]})
        return streamable_http_client(definition.base_url, http_client=http)

    async def _drop(self) -> None:
        owner, self._owner, self._client = self._owner, None, None
        if self._closing is not None:
            self._closing.set()
        if owner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await owner
            if not owner.done():
                owner.cancel()


def _content(blocks: list[Any], structured: Any) -> str:
    texts = [block.text for block in blocks if getattr(block, "type", None) == "text"]
    if texts:
        return "\n".join(texts)
    if structured is not None:
        return orjson.dumps(structured).decode()
    return "\n".join(f"[{getattr(block, 'type', 'content')} block]" for block in blocks)


def _clip(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
