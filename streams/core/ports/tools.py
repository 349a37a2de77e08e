"""The tool port: what the pipeline asks of a business system (an HTTP API or an MCP server) and what
it gets back.

Connectors (connectors/tools/) implement ``ToolClient``, one per declared connector
(deploy/connectors/*.yaml, streams/core/connectors.py). A client either returns a ``ToolResult``
(also when the system answered that the call failed: the model reads why and may react) or raises a
``streams.core.errors.ToolError`` subclass (the call could not be made or answered: a timeout, a
connection, an authentication failure, an answer too large).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from streams.core.ports.model import ToolSpec


@dataclass(frozen=True, slots=True)
class ToolResult:
    content: str  # what the model reads: the answer as text (JSON for an HTTP tool's JSON body)
    is_error: bool = False  # the system said the call failed (an HTTP 4xx, an MCP ``isError``)
    status: str = "ok"  # a short code for the audit and usage records: ok, http_404, tool_error, ...
    response_bytes: int = 0
    latency_s: float = 0.0


class ToolClient(Protocol):
    """One connector. ``idempotency_key`` is the same for every attempt of one step of one event: a
    write tool sends it (HTTP: the ``Idempotency-Key`` header; MCP: the call's ``_meta``) so that the
    system can do the write once however often it is asked."""

    connector: str

    async def list_tools(self) -> list[ToolSpec]:
        """The tools the connector offers, with their argument schemas (an MCP server's ``tools/list``;
        an HTTP connector's declared operations)."""
        ...

    async def call(
        self, tool: str, arguments: Mapping[str, Any], *, idempotency_key: str, timeout_s: float
    ) -> ToolResult: ...

    async def aclose(self) -> None: ...
