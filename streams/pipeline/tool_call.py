"""Making one tool call for an event: the connector's circuit breaker, its share of the connector's rate
limit, the call within the event's deadline, tries again within the connector's ``retries`` (the same
idempotency key each time), and an attempt (``kind`` tool) for every try. The tool loop
(streams/pipeline/tool_loop.py) calls the tools a model asks for; context lookups
(streams/pipeline/context.py) call the reads an agent declares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from streams.agent.definition import Agent
from streams.core.domain import Attempt
from streams.core.errors import CircuitOpen, DeadlineExceeded, RateLimitWait, ToolAuthFailed, ToolError
from streams.core.ports.tools import ToolResult
from streams.pipeline.deps import Deps
from streams.pipeline.rate_limit import Permit
from streams.pipeline.stopped import ChainStopped
from streams.pipeline.tools import Tool


@dataclass(frozen=True, slots=True)
class ToolRequest:
    tool: Tool
    arguments: dict[str, Any]
    key: str  # the idempotency key: the same for every try
    purpose: str  # tool (the model asked for it) | context (a lookup before the prompt)


async def call_tool(
    request: ToolRequest, agent: Agent, deps: Deps, attempts: list[Attempt], *, deadline: float
) -> ToolResult:
    """One call, tried again within the connector's retries and the deadline; every try an attempt.
    Raises ``ChainStopped`` when it cannot be made or answered in time."""
    tool, tries = request.tool, 0
    while True:
        answer = await _try(request, agent, deps, attempts, deadline=deadline)
        if isinstance(answer, ToolResult):
            return answer
        error = answer
        remaining_s = deadline - deps.clock.monotonic()
        if error.retriable and tries < tool.retries.max_retries:
            delay_s = error.retry_after_s if error.retry_after_s is not None else _backoff_s(tool, tries, deps)
            if delay_s < remaining_s:
                await deps.clock.sleep(delay_s)
                tries += 1
                continue
        raise ChainStopped("dead_letter", error)


def _backoff_s(tool: Tool, tries: int, deps: Deps) -> float:
    retries = tool.retries
    return deps.rng.random() * min(retries.max_backoff_s, retries.backoff_s * float(2**tries))


async def _try(
    request: ToolRequest, agent: Agent, deps: Deps, attempts: list[Attempt], *, deadline: float
) -> ToolResult | ToolError:
    tool = request.tool
    connector = tool.connector
    assert deps.toolbox is not None
    remaining_s = deadline - deps.clock.monotonic()
    if remaining_s <= 0:
        reason = f"the event's deadline passed before {connector}.{tool.spec.name} could be called"
        raise ChainStopped(agent.definition.reliability.on_deadline, DeadlineExceeded(reason))
    breakers = deps.toolbox.breakers[connector]
    if not breakers.allows(connector, deps.clock.monotonic()):
        raise ChainStopped("dead_letter", CircuitOpen(f"the circuit of connector {connector} is open"))
    permit = await _permit(tool, agent, deps, remaining_s=remaining_s)
    timeout_s = min(tool.timeout_s, deadline - deps.clock.monotonic())
    started_ms, started = deps.clock.now_ms(), deps.clock.monotonic()
    result: ToolResult | None = None
    error: ToolError | None = None
    try:
        result = await deps.toolbox.clients[connector].call(
            tool.spec.name, request.arguments, idempotency_key=request.key, timeout_s=timeout_s
        )
    except ToolError as exc:
        error = exc
    finally:
        outcome = result.status if result else error.reason if error else "interrupted"
        if result is None and error is None:
            breakers.release(connector)
        latency_s = result.latency_s if result and result.latency_s else deps.clock.monotonic() - started
        attempts.append(
            _tool_attempt(request, len(attempts) + 1, started_ms, latency_s, outcome=outcome, result=result)
        )
        if permit is not None:
            deps.limiter.settle(permit, f"tool:{connector}", tokens_used=None, limits=None)
    if result is not None:
        breakers.record_success(connector)
        return result
    assert error is not None
    breakers.record_failure(
        connector, deps.clock.monotonic(), reason=error.reason, trip=isinstance(error, ToolAuthFailed)
    )
    return error


async def _permit(tool: Tool, agent: Agent, deps: Deps, *, remaining_s: float) -> Permit | None:
    """The connector's share of its rate limit (every worker's calls together), like a model's."""
    if deps.limiter.idle:
        return None
    key = f"tool:{tool.connector}"
    granted = await deps.limiter.acquire(agent.name, key, tokens=0, max_wait_s=remaining_s / 2)
    if isinstance(granted, Permit):
        return granted
    wait = "this worker has no share of it" if math.isinf(granted.wait_s) else f"waiting {granted.wait_s:.1f} s"
    message = f"connector {tool.connector}: {granted.limit} limit: {wait}, and the event's deadline does not leave that"
    raise ChainStopped("dead_letter", RateLimitWait(message, retry_after_s=granted.wait_s))


def _tool_attempt(
    request: ToolRequest, number: int, started_ms: int, latency_s: float, *, outcome: str, result: ToolResult | None
) -> Attempt:
    tool = request.tool
    return Attempt(
        provider=tool.connector,
        model=tool.spec.name,
        number=number,
        started_at_ms=started_ms,
        latency_s=latency_s,
        tokens_in=0,
        tokens_out=0,
        model_version=None,
        outcome=outcome,
        purpose=request.purpose,
        kind="tool",
        response_bytes=result.response_bytes if result else 0,
    )
