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
connector's ``retries`` and the deadline, with the same idempotency key (streams/pipeline/tool_call.py);
after that the event stops,
and a transient failure waits in the agent's next retry tier, which goes on from the journal. A result
the system sent as an error (an HTTP 4xx, an MCP ``isError``) is not a failure: the model reads it.
"""

from __future__ import annotations

import dataclasses

from streams.agent.definition import Agent
from streams.core.domain import Attempt
from streams.core.errors import ToolCallInvalid, ToolStepsExceeded
from streams.core.ports.model import ChatMessage, ModelResponse, ToolCall, ToolSpec
from streams.core.ports.tools import ToolResult
from streams.pipeline.deps import Deps
from streams.pipeline.stopped import ChainStopped
from streams.pipeline.tool_call import ToolRequest, call_tool
from streams.pipeline.tool_journal import JournalStore, ToolJournal, decode_journal, encode_journal
from streams.pipeline.tools import call_problems, idempotency_key, parse_arguments

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
        assert policy is not None and deps.toolbox is not None, "made only for an agent with tools, and its connectors"
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

    def refuse(self, response: ModelResponse, error: ToolCallInvalid) -> list[ChatMessage]:
        """The turn and an error result for each of its calls: what the model reads when it is asked
        again. They stay in the conversation, so that the model's later turns follow what it was told
        (none of the calls was made; the turn is not a step)."""
        answers = [
            ChatMessage(
                "tool", "; ".join(error.by_call.get(c.call_id, [NOT_RUN])), tool_call_id=c.call_id, is_error=True
            )
            for c in response.tool_calls
        ]
        refused = [ChatMessage("assistant", response.text, tool_calls=response.tool_calls), *answers]
        self.tail += refused
        return refused

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
        decision = self._decision
        key = idempotency_key(decision.event_id, decision.generation, self.steps, index, call.name)
        request = ToolRequest(self.tools[call.name], parse_arguments(call) or {}, key, purpose="tool")
        return await call_tool(request, self._agent, self._deps, attempts, deadline=deadline)
