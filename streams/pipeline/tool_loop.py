"""One event's tool loop: the model asks for tools, Keel makes the calls, the model reads the results.

The chain runner (streams/pipeline/chain.py) sends the agent's allowed tools with every model call. A
turn that asks for tools is checked first (streams/pipeline/tools.py: every call, before any is made);
an invalid one goes back to the model with the problems, as an invalid answer does. A valid one is a
*step*: it is journalled (streams/pipeline/tool_journal.py), then its calls are made in order, each
result journalled before the next call, and the conversation (prompt, tool turns, results) goes to
the model again. ``tools.max_steps`` bounds the steps; the event's deadline and budgets cover every
model turn, and every try of every call is an attempt (``kind`` tool) with its connector, tool,
latency, outcome and size, so it is audited and becomes a usage record.

A call that fails (no connection, a timeout, a 5xx or 429 from the system) is tried again within the
connector's ``retries`` and the deadline, with the same idempotency key; after that the event stops,
and a transient failure waits in the agent's next retry tier, which goes on from the journal. A result
the system sent as an error (an HTTP 4xx, an MCP ``isError``) is not a failure: the model reads it.
"""

from __future__ import annotations

import dataclasses
import math

from streams.agent.definition import Agent
from streams.core.domain import Attempt
from streams.core.errors import (
    CircuitOpen,
    ConnectorConfigError,
    DeadlineExceeded,
    RateLimitWait,
    ToolAuthFailed,
    ToolCallInvalid,
    ToolError,
    ToolStepsExceeded,
)
from streams.core.ports.model import ChatMessage, ModelResponse, ToolCall, ToolSpec
from streams.core.ports.tools import ToolResult
from streams.pipeline.deps import Deps
from streams.pipeline.rate_limit import Permit
from streams.pipeline.stopped import ChainStopped
from streams.pipeline.tool_journal import JournalStore, ToolJournal, decode_journal, encode_journal
from streams.pipeline.tools import Tool, call_problems, idempotency_key, parse_arguments

NOT_RUN = "not run: another call of this turn was invalid; ask for it again"


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    """Which decision of which event this loop runs, and where its journal is."""

    event_id: str
    generation: int
    pass_number: int
    journal: JournalStore


class ToolLoop:
    def __init__(self, agent: Agent, deps: Deps, decision: Decision, *, first_of_pass: int) -> None:
        """``first_of_pass``: how many of the event's attempts came from earlier passes."""
        policy = agent.definition.tools
        if policy is None or deps.toolbox is None:
            raise ConnectorConfigError(f"agent {agent.name} declares tools, but this worker loaded no connectors")
        self.tools = deps.toolbox.for_agent(policy)
        self.specs: tuple[ToolSpec, ...] = tuple(tool.spec for tool in self.tools.values())
        self._agent, self._deps, self._decision = agent, deps, decision
        self._max_steps, self._first_of_pass = policy.max_steps, first_of_pass
        self.tail: list[ChatMessage] = []
        self.steps = 0

    async def resume(self, attempts: list[Attempt], *, deadline: float) -> None:
        """Go on from the journal of this decision, if there is one: its attempts, when this pass made
        them, join the event's; calls it holds without a result are made now."""
        blob = await self._decision.journal.load()
        journal = decode_journal(blob) if blob is not None else None
        if journal is None or journal.generation < self._decision.generation:
            return  # a first run, or a new decision (a re-run, a replay): from the beginning
        self.tail, self.steps = list(journal.tail), journal.steps
        if journal.pass_number == self._decision.pass_number:
            attempts[self._first_of_pass :] = journal.attempts
        await self._make_pending(attempts, deadline=deadline)

    def conversation(self, prompt: tuple[ChatMessage, ...]) -> list[ChatMessage]:
        return [*prompt, *self.tail]

    def invalid(self, response: ModelResponse) -> ToolCallInvalid | None:
        """Why the turn's calls may not be made (all or none of them are), or None."""
        by_call = call_problems(response.tool_calls, self.tools)
        if not by_call:
            return None
        return ToolCallInvalid([p for problems in by_call.values() for p in problems], by_call=by_call)

    @staticmethod
    def refused_turn(response: ModelResponse, error: ToolCallInvalid) -> list[ChatMessage]:
        """The turn and an error result for each of its calls: what the model reads when it is asked again."""
        answers = [
            ChatMessage(
                "tool", "; ".join(error.by_call.get(c.call_id, [NOT_RUN])), tool_call_id=c.call_id, is_error=True
            )
            for c in response.tool_calls
        ]
        return [ChatMessage("assistant", response.text, tool_calls=response.tool_calls), *answers]

    async def step(self, response: ModelResponse, attempts: list[Attempt], *, deadline: float) -> None:
        """Make the (valid) calls of a model turn: journal the turn, then each result as it comes."""
        if self.steps >= self._max_steps:
            error = ToolStepsExceeded(
                f"the model asked for tools in more than {self._max_steps} turns (tools.max_steps)"
            )
            raise ChainStopped("dead_letter", error)
        self.steps += 1
        self.tail.append(ChatMessage("assistant", response.text, tool_calls=response.tool_calls))
        await self._save(attempts)
        await self._make_pending(attempts, deadline=deadline)

    async def _make_pending(self, attempts: list[Attempt], *, deadline: float) -> None:
        """The calls of the last turn that have no result yet, in order."""
        at = next((i for i in range(len(self.tail) - 1, -1, -1) if self.tail[i].tool_calls), None)
        if at is None:
            return
        turn = self.tail[at]
        answered = {m.tool_call_id for m in self.tail[at + 1 :] if m.role == "tool"}  # ids may recur in turns
        for index, call in enumerate(turn.tool_calls):
            if call.call_id in answered:
                continue
            result = await self._call(call, index, attempts, deadline=deadline)
            self.tail.append(ChatMessage("tool", result.content, tool_call_id=call.call_id, is_error=result.is_error))
            await self._save(attempts)

    async def _save(self, attempts: list[Attempt]) -> None:
        decision = self._decision
        journal = ToolJournal(
            decision.generation,
            decision.pass_number,
            self.steps,
            tuple(self.tail),
            tuple(attempts[self._first_of_pass :]),
        )
        await decision.journal.save(encode_journal(journal))

    async def _call(self, call: ToolCall, index: int, attempts: list[Attempt], *, deadline: float) -> ToolResult:
        """One call, tried again within the connector's retries and the deadline; every try an attempt."""
        tool, deps = self.tools[call.name], self._deps
        arguments = parse_arguments(call) or {}
        decision = self._decision
        key = idempotency_key(decision.event_id, decision.generation, self.steps, index, call.name)
        tries = 0
        while True:
            answer = await self._try(tool, arguments, key, attempts, deadline=deadline)
            if isinstance(answer, ToolResult):
                return answer
            error = answer
            remaining_s = deadline - deps.clock.monotonic()
            if error.retriable and tries < tool.retries.max_retries:
                delay_s = error.retry_after_s if error.retry_after_s is not None else self._backoff_s(tool, tries)
                if delay_s < remaining_s:
                    await deps.clock.sleep(delay_s)
                    tries += 1
                    continue
            raise ChainStopped("dead_letter", error)

    def _backoff_s(self, tool: Tool, tries: int) -> float:
        retries = tool.retries
        return self._deps.rng.random() * min(retries.max_backoff_s, retries.backoff_s * float(2**tries))

    async def _try(
        self, tool: Tool, arguments: dict[str, object], key: str, attempts: list[Attempt], *, deadline: float
    ) -> ToolResult | ToolError:
        deps, connector = self._deps, tool.connector
        assert deps.toolbox is not None
        remaining_s = deadline - deps.clock.monotonic()
        if remaining_s <= 0:
            reason = f"the event's deadline passed before {connector}.{tool.spec.name} could be called"
            raise ChainStopped(self._agent.definition.reliability.on_deadline, DeadlineExceeded(reason))
        breakers = deps.toolbox.breakers[connector]
        if not breakers.allows(connector, deps.clock.monotonic()):
            raise ChainStopped("dead_letter", CircuitOpen(f"the circuit of connector {connector} is open"))
        permit = await self._permit(tool, remaining_s=remaining_s)
        timeout_s = min(tool.timeout_s, deadline - deps.clock.monotonic())
        started_ms, started = deps.clock.now_ms(), deps.clock.monotonic()
        result: ToolResult | None = None
        error: ToolError | None = None
        try:
            result = await deps.toolbox.clients[connector].call(
                tool.spec.name, arguments, idempotency_key=key, timeout_s=timeout_s
            )
        except ToolError as exc:
            error = exc
        finally:
            outcome = result.status if result else error.reason if error else "interrupted"
            if result is None and error is None:
                breakers.release(connector)
            latency_s = result.latency_s if result and result.latency_s else deps.clock.monotonic() - started
            attempts.append(
                _tool_attempt(tool, len(attempts) + 1, started_ms, latency_s, outcome=outcome, result=result)
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

    async def _permit(self, tool: Tool, *, remaining_s: float) -> Permit | None:
        """The connector's share of its rate limit (every worker's calls together), like a model's."""
        deps = self._deps
        if deps.limiter.idle:
            return None
        key = f"tool:{tool.connector}"
        granted = await deps.limiter.acquire(self._agent.name, key, tokens=0, max_wait_s=remaining_s / 2)
        if isinstance(granted, Permit):
            return granted
        wait = "this worker has no share of it" if math.isinf(granted.wait_s) else f"waiting {granted.wait_s:.1f} s"
        message = (
            f"connector {tool.connector}: {granted.limit} limit: {wait}, and the event's deadline does not leave that"
        )
        raise ChainStopped("dead_letter", RateLimitWait(message, retry_after_s=granted.wait_s))


def _tool_attempt(
    tool: Tool, number: int, started_ms: int, latency_s: float, *, outcome: str, result: ToolResult | None
) -> Attempt:
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
        purpose="tool",
        kind="tool",
        response_bytes=result.response_bytes if result else 0,
    )
