"""A ``ToolClient`` for an HTTP API: each declared operation (streams/core/connectors.py ``HttpTool``)
is a tool; a call is one request.

The path's ``{name}`` parts take their arguments, URL-encoded; the other arguments go in the query
string (GET, DELETE) or as the JSON body. A write tool sends the call's idempotency key as the
``Idempotency-Key`` header (the way Stripe and the IETF draft name it), so the system can do the write
once however often it is asked. The answer is read up to the connector's ``max_response_bytes``.

How an answer ends:
- 2xx: a result, the body as text (JSON stays JSON);
- 401/403: ``ToolAuthFailed`` (after one new token, for OAuth client credentials);
- 408, 429 and 5xx: ``ToolUnavailable``, with the ``Retry-After`` the system asked for;
- any other 4xx: a result marked as an error (``http_404``...): the model reads why and may react;
- no connection, a timeout, an answer too large: ``ToolUnavailable``, ``ToolTimeout``, ``ToolResponseInvalid``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from connectors.http_headers import parse_retry_after
from connectors.models.http_errors import request_sent, snippet
from connectors.tools.auth import Credentials, credentials
from streams.core.connectors import ConnectorDefinition, HttpTool
from streams.core.errors import ToolAuthFailed, ToolResponseInvalid, ToolTimeout, ToolUnavailable
from streams.core.ports.model import ToolSpec
from streams.core.ports.tools import ToolResult

_UNAVAILABLE = (408, 425, 429)
_QUERY_METHODS = ("GET", "DELETE")


class HttpToolClient:
    def __init__(
        self,
        definition: ConnectorDefinition,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 32,
    ) -> None:
        assert definition.kind == "http" and definition.base_url is not None
        self.connector = definition.name
        self._definition = definition
        self._base = definition.base_url.rstrip("/")
        self._credentials: Credentials = credentials(definition.auth, connector=definition.name)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(transport=transport, limits=limits, follow_redirects=False)

    def __repr__(self) -> str:
        return f"HttpToolClient(connector={self.connector!r}, base_url={self._base!r})"

    async def list_tools(self) -> list[ToolSpec]:
        return [ToolSpec(name, tool.description, tool.arguments) for name, tool in self._definition.tools.items()]

    async def call(
        self, tool: str, arguments: Mapping[str, Any], *, idempotency_key: str, timeout_s: float
    ) -> ToolResult:
        operation = self._definition.tools[tool]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):  # the whole call: token, request and a trickling body
                status, headers, body = await self._send(operation, arguments, idempotency_key, timeout_s)
                if status in (401, 403) and self._credentials.refused():  # a new token may do
                    status, headers, body = await self._send(operation, arguments, idempotency_key, timeout_s)
        except (TimeoutError, httpx.TimeoutException) as exc:
            message = self._say(tool, f"no complete answer within {timeout_s:g} s")
            raise ToolTimeout(message, sent=request_sent(exc)) from exc
        except httpx.TransportError as exc:
            message = self._say(tool, f"{type(exc).__name__}: {exc}")
            raise ToolUnavailable(message, sent=request_sent(exc)) from exc
        return self._answer(tool, status, headers, body, latency_s=time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(
        self, operation: HttpTool, arguments: Mapping[str, Any], idempotency_key: str, timeout_s: float
    ) -> tuple[int, httpx.Headers, bytes]:
        url, rest = self._base + _path(operation, arguments), _rest(operation, arguments)
        headers = {"Accept": "application/json"}
        authorization = await self._credentials.header(self._http, timeout_s=timeout_s)
        if authorization is not None:
            headers["Authorization"] = authorization
        if operation.writes:
            headers["Idempotency-Key"] = idempotency_key
        request = self._http.build_request(
            operation.method,
            url,
            params=_query(rest) if operation.method in _QUERY_METHODS else None,
            content=orjson.dumps(rest) if operation.method not in _QUERY_METHODS else None,
            headers=headers | ({"Content-Type": "application/json"} if operation.method not in _QUERY_METHODS else {}),
            timeout=timeout_s,
        )
        response = await self._http.send(request, stream=True)
        try:
            body = await self._read(response)
        finally:
            await response.aclose()
        return response.status_code, response.headers, body

    async def _read(self, response: httpx.Response) -> bytes:
        limit = self._definition.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise ToolResponseInvalid(
                    self._say("", f"the answer is over the connector's max_response_bytes ({limit})")
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _answer(self, tool: str, status: int, headers: httpx.Headers, body: bytes, *, latency_s: float) -> ToolResult:
        text = body.decode("utf-8", errors="replace")
        if 200 <= status < 300:
            return ToolResult(text, status="ok", response_bytes=len(body), latency_s=latency_s)
        shown = self._say(tool, f"HTTP {status}: {snippet(text)}")
        if status in (401, 403):
            raise ToolAuthFailed(shown)
        if status in _UNAVAILABLE or status >= 500:
            raise ToolUnavailable(shown, retry_after_s=parse_retry_after(headers))
        return ToolResult(text, is_error=True, status=f"http_{status}", response_bytes=len(body), latency_s=latency_s)

    def _say(self, tool: str, detail: str) -> str:
        for secret in self._credentials.secrets():
            detail = detail.replace(secret, "***")
        return f"connector {self.connector}{f' tool {tool}' if tool else ''}: {detail}"


def _path(operation: HttpTool, arguments: Mapping[str, Any]) -> str:
    path = operation.path
    for name in operation.path_arguments():
        value = quote(_text(arguments.get(name, "")), safe="")
        # "." and ".." would climb the path once the URL is normalised: sent encoded, as plain names
        path = path.replace("{" + name + "}", value.replace(".", "%2E") if value in (".", "..") else value)
    return path


def _rest(operation: HttpTool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    in_path = set(operation.path_arguments())
    return {k: v for k, v in arguments.items() if k not in in_path}


def _query(arguments: Mapping[str, Any]) -> list[tuple[str, str | int | float | bool | None]]:
    return [(k, _text(v)) for k, v in arguments.items() if v is not None]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
