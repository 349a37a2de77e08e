"""Run an event's model chain: attempts, retries, re-asks and fallbacks, within the event's deadline.

The decisions come from ``streams.pipeline.fallback`` (pure); this module carries them out through the ports
(``ModelClient``, ``Clock``), the shared circuit breakers, rate limiter and model slots, and records
every attempt that was sent, whatever its purpose, so each becomes a usage record (with Keel's
estimate of its prompt when the provider may have served it without saying what it used).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from streams.agent.definition import Agent, ModelSpec
from streams.agent.prompt import RenderedPrompt
from streams.core.domain import Attempt, Stage
from streams.core.errors import (
    BudgetExhausted,
    CircuitOpen,
    DeadlineExceeded,
    KeelError,
    NoModelAvailable,
    OutputError,
    OutputNotJson,
    OutputTruncated,
    ProviderConnectionError,
    ProviderTimeout,
    RateLimitWait,
    ToolCallInvalid,
    ToolError,
    ToolStepsExceeded,
)
from streams.core.ports.model import CHARS_PER_TOKEN, ChatMessage, ModelRequest, ModelResponse, estimate_prompt_tokens
from streams.cost.budget import Reservation
from streams.pipeline.capacity import acquire_permit, open_circuits, record_health, settle_permit, take_slot
from streams.pipeline.deps import Deps
from streams.pipeline.fallback import Fallback, Position, Reask, Retry, Stop, Trim, decide, first_model
from streams.pipeline.parse import ValidatedOutput, parse_json_object, validate_output
from streams.pipeline.rate_limit import Permit
from streams.pipeline.stopped import ChainStopped
from streams.pipeline.tool_loop import ToolLoop

log = logging.getLogger(__name__)
HOLD_GRACE_S = 60.0  # a budget hold outlives its call by this much before it counts as spent in full


@dataclass(frozen=True, slots=True)
class ChainSuccess:
    response: ModelResponse
    validated: ValidatedOutput
    prompt: RenderedPrompt  # the one the answer came from: the full prompt, or the trimmed one


@dataclass(frozen=True, slots=True)
class _Answer:
    response: ModelResponse | None
    validated: ValidatedOutput | None
    error: KeelError | None


def stage_of(error: KeelError) -> Stage:
    if isinstance(error, ToolError | ToolStepsExceeded):
        return Stage.TOOL
    if isinstance(error, OutputNotJson | OutputTruncated):
        return Stage.PARSE
    if isinstance(error, OutputError):
        return Stage.VALIDATE
    return Stage.MODEL


async def run_chain(
    agent: Agent,
    prompt: RenderedPrompt,
    deps: Deps,
    attempts: list[Attempt],
    *,
    started: float,
    trimmed: RenderedPrompt | None = None,
    purpose: str = "initial",
    tenant: str | None = None,
    tools: ToolLoop | None = None,
) -> ChainSuccess:
    """Try the agent's chain until an answer validates or nothing is left; append every attempt.

    ``attempts`` holds the event's attempts so far (from earlier retry tiers), so numbering continues;
    ``trimmed`` is the prompt without its optional context, when the agent allows trimming; ``purpose``
    is the first attempt's (``tier_retry`` in a retry tier); ``tenant`` picks the budgets that apply
    besides the agent's; ``tools``: the event's tool loop, when the agent has tools (its steps so far
    already resumed from the journal)."""
    chain = agent.definition.model_chain
    policy = agent.definition.reliability
    deadline = started + policy.deadline_s
    index, prompt, trimmed = _start(chain, prompt, trimmed, open_circuits(chain, deps))
    position, messages = Position(index), _conversation(prompt, tools)
    last_error: KeelError | None = None
    while True:
        remaining_s = deadline - deps.clock.monotonic()
        if remaining_s <= 0:
            raise ChainStopped(policy.on_deadline, _deadline_passed(policy.deadline_s, attempts, last_error))
        spec = chain[position.index]
        answer = await _ask(
            agent, spec, messages, deps, attempts, tenant=tenant, purpose=purpose, timeout_s=remaining_s, tools=tools
        )
        if answer.error is None and answer.response is not None and answer.response.tool_calls:
            assert tools is not None  # valid calls (checked in _call) come only from a model offered tools
            await tools.step(answer.response, attempts, deadline=deadline)  # make them, then ask again
            messages, purpose, last_error = tools.conversation(prompt.messages), "step", None
            continue
        if answer.error is None and answer.response is not None and answer.validated is not None:
            return ChainSuccess(answer.response, answer.validated, prompt)
        assert answer.error is not None
        last_error = answer.error
        remaining_s = deadline - deps.clock.monotonic()
        # it queued for its model until the deadline, or the deadline passed during the call
        if isinstance(answer.error, DeadlineExceeded) or remaining_s <= 0:
            raise ChainStopped(policy.on_deadline, _deadline_passed(policy.deadline_s, attempts, answer.error))
        decision = decide(
            answer.error,
            chain=chain,
            position=position,
            policy=policy,
            remaining_s=remaining_s,
            unavailable=open_circuits(chain, deps),
            jitter=deps.rng.random(),
            can_trim=trimmed is not None,
        )
        if isinstance(decision, Stop):
            raise ChainStopped(decision.route, answer.error)
        if isinstance(decision, Retry):
            await deps.clock.sleep(decision.delay_s)
            position, purpose = dataclasses.replace(position, retries=position.retries + 1), "retry"
        elif isinstance(decision, Reask):
            assert answer.response is not None
            messages += _reask_turn(answer.response, answer.error, decision.feedback, tools)
            position, purpose = dataclasses.replace(position, reasks=position.reasks + 1), "reask"
        elif isinstance(decision, Trim):
            assert trimmed is not None
            prompt, trimmed = trimmed, None
            position, messages, purpose = Position(position.index), _conversation(prompt, tools), "trim"
        elif isinstance(decision, Fallback):
            position, messages, purpose = Position(decision.index), _conversation(prompt, tools), "fallback"


async def _ask(
    agent: Agent,
    spec: ModelSpec,
    messages: list[ChatMessage],
    deps: Deps,
    attempts: list[Attempt],
    *,
    tenant: str | None,
    purpose: str,
    timeout_s: float,
    tools: ToolLoop | None,
) -> _Answer:
    """One attempt on ``spec``, unless its circuit is open; its health recorded."""
    if not deps.breakers.allows(spec.key, deps.clock.monotonic()):
        return _Answer(None, None, CircuitOpen(f"the circuit of {spec.key} is open"))
    answer = await _budgeted_attempt(
        agent, spec, messages, deps, attempts, tenant=tenant, purpose=purpose, timeout_s=timeout_s, tools=tools
    )
    record_health(deps, spec, answer.error)
    return answer


def _conversation(prompt: RenderedPrompt, tools: ToolLoop | None) -> list[ChatMessage]:
    """What a model is sent afresh: the prompt, and the tool steps made so far (never made again)."""
    return tools.conversation(prompt.messages) if tools is not None else list(prompt.messages)


def _tool_calls_invalid(response: ModelResponse, tools: ToolLoop | None) -> ToolCallInvalid | None:
    if tools is None:  # no tools were offered: a call is an invalid answer
        names = ", ".join(sorted({c.name[:64] for c in response.tool_calls}))
        return ToolCallInvalid([f"this agent has no tools (the answer called {names}): answer with the JSON object"])
    return tools.invalid(response)


def _reask_turn(response: ModelResponse, error: KeelError, feedback: str, tools: ToolLoop | None) -> list[ChatMessage]:
    """The invalid turn and what the model is told of it: for refused tool calls, an error result for
    each (a provider wants every call answered); otherwise the problems of its answer."""
    if isinstance(error, ToolCallInvalid) and tools is not None and response.tool_calls:
        return tools.refuse(response, error)
    return [ChatMessage("assistant", response.text), ChatMessage("user", feedback)]


def _start(
    chain: list[ModelSpec], prompt: RenderedPrompt, trimmed: RenderedPrompt | None, unavailable: frozenset[int]
) -> tuple[int, RenderedPrompt, RenderedPrompt | None]:
    """The first model to try, with the prompt to send it (trimmed when only that fits any model)."""
    index = first_model(chain, prompt_tokens=_tokens(prompt), unavailable=unavailable)
    if index is None and trimmed is not None:
        prompt, trimmed = trimmed, None
        index = first_model(chain, prompt_tokens=_tokens(prompt), unavailable=unavailable)
    if index is None:
        raise ChainStopped("dead_letter", _no_model(chain, _tokens(prompt)))
    return index, prompt, trimmed


async def _budgeted_attempt(
    agent: Agent,
    spec: ModelSpec,
    messages: list[ChatMessage],
    deps: Deps,
    attempts: list[Attempt],
    *,
    tenant: str | None,
    purpose: str,
    timeout_s: float,
    tools: ToolLoop | None,
) -> _Answer:
    """One attempt, its maximum cost reserved in the event's budgets first and settled after (with
    the attempt's tokens: estimated when the provider sent none), or released when no call was made."""
    reservation = await _reserve(agent, spec, messages, deps, tenant, timeout_s=timeout_s)
    if reservation is None or deps.budgets is None:
        return await _attempt(agent, spec, messages, deps, attempts, purpose=purpose, timeout_s=timeout_s, tools=tools)
    made = len(attempts)
    try:
        answer = await _attempt(
            agent, spec, messages, deps, attempts, purpose=purpose, timeout_s=timeout_s, tools=tools
        )
    except BaseException:  # cancelled mid-call (a rebalance, a shutdown): it may have been paid for
        if len(attempts) > made:
            deps.budgets.abandon(reservation)
        else:  # cancelled while it waited for the rate limiter or a slot: nothing was sent
            deps.budgets.release(reservation)
        raise
    if len(attempts) > made:
        deps.budgets.settle(reservation, attempts[-1])
    else:  # no rate-limit room or model slot in time: the call was not made
        deps.budgets.release(reservation)
    return answer


async def _reserve(
    agent: Agent, spec: ModelSpec, messages: list[ChatMessage], deps: Deps, tenant: str | None, *, timeout_s: float
) -> Reservation | None:
    """Hold the call's maximum cost in the event's budgets; a refusal parks the event."""
    if deps.budgets is None or not deps.budgets.applies(agent.name, tenant):
        return None
    chars = sum(m.chars for m in messages)
    # the call's timeout; for a model with a concurrency limit, the time left: it may queue first
    longest_s = timeout_s if deps.slots.limit(spec.key) else min(spec.timeout_s, timeout_s)
    expires_in_s = longest_s + HOLD_GRACE_S
    reservation = await deps.budgets.reserve(
        agent.name, tenant, spec, prompt_chars=chars, messages=len(messages), expires_in_s=expires_in_s
    )
    refusal = reservation.refusal
    if refusal is not None:
        limit = refusal.limit
        shown = f"{limit.usd:g} USD" if limit.usd is not None else f"{limit.tokens} tokens"
        error = BudgetExhausted(
            f"the budget of {refusal.scope} for {refusal.period} ({shown}) has no room for a call to {spec.key}",
            scope=refusal.scope,
            period=refusal.period,
            until_ms=refusal.until_ms,
        )
        raise ChainStopped("park", error)
    return reservation


def _tokens(prompt: RenderedPrompt) -> int:
    return prompt.chars // CHARS_PER_TOKEN


async def _attempt(
    agent: Agent,
    spec: ModelSpec,
    messages: list[ChatMessage],
    deps: Deps,
    attempts: list[Attempt],
    *,
    purpose: str,
    timeout_s: float,
    tools: ToolLoop | None,
) -> _Answer:
    """One call, once the rate limiter and the model's concurrency limit let it go. The rate limiter
    is asked first (no call and no attempt when it would wait too long) and told after; then the call
    queues for a slot of its model (streams/pipeline/model_slots.py) for at most the time left: none in time
    means no call and a deadline exceeded. The call's timeout starts when its request is sent."""
    permit: Permit | None = None
    if not deps.limiter.idle:  # while no limit or hold applies, nothing is awaited or allocated here
        granted = await acquire_permit(agent, spec, messages, deps, remaining_s=timeout_s)
        if isinstance(granted, RateLimitWait):
            return _Answer(None, None, granted)
        permit, timeout_s = granted, timeout_s - granted.waited_s
    slot = await take_slot(spec, deps, permit, max_wait_s=timeout_s)
    if slot is None:
        limit = deps.slots.limit(spec.key)
        message = f"no call slot of {spec.key} (max_concurrent {limit}) came free before the event's deadline"
        return _Answer(None, None, DeadlineExceeded(message))
    try:
        timeout_s -= slot.waited_s
        return await _call(
            agent,
            spec,
            messages,
            deps,
            attempts,
            purpose=purpose,
            timeout_s=timeout_s,
            permit=permit,
            queued_s=slot.waited_s,
            tools=tools,
        )
    finally:
        deps.slots.release(slot)


async def _call(
    agent: Agent,
    spec: ModelSpec,
    messages: list[ChatMessage],
    deps: Deps,
    attempts: list[Attempt],
    *,
    purpose: str,
    timeout_s: float,
    permit: Permit | None,
    queued_s: float,
    tools: ToolLoop | None,
) -> _Answer:
    """The call and the validation of its answer (none for a turn that asks for tools: the loop checks
    those); recorded as an attempt whatever happens."""
    request = ModelRequest(
        model=spec.model,
        messages=tuple(messages),
        timeout_s=min(spec.timeout_s, timeout_s),
        parameters=spec.parameters,
        response_schema=agent.response_schema,
        response_schema_name=agent.name,
        tools=tools.specs if tools is not None else (),
    )
    started_ms, started = deps.clock.now_ms(), deps.clock.monotonic()
    response: ModelResponse | None = None
    validated: ValidatedOutput | None = None
    error: KeelError | None = None
    outcome = "interrupted"  # a bug or a cancellation: recorded too, the call may have been paid for
    try:
        response = await deps.models[spec.provider].complete(request)
        if response.tool_calls:  # made by the tool loop once the chain has them, if they may be made
            invalid = _tool_calls_invalid(response, tools)
            if invalid is not None:
                raise invalid
        else:
            parsed = parse_json_object(response.text, finish_reason=response.finish_reason)
            validated = validate_output(agent.output_schema.raw, parsed)
        outcome = "ok"
    except KeelError as exc:
        error, outcome = exc, exc.reason
    finally:
        estimated = response is None and _maybe_served(error)
        attempts.append(
            Attempt(
                provider=spec.provider,
                model=spec.model,
                number=len(attempts) + 1,
                started_at_ms=started_ms,
                latency_s=response.latency_s if response else deps.clock.monotonic() - started,
                tokens_in=response.tokens_in if response else estimate_prompt_tokens(messages) if estimated else 0,
                tokens_out=response.tokens_out if response else 0,
                model_version=response.model_version if response else None,
                outcome=outcome,
                purpose=purpose,
                queued_s=queued_s,
                tokens_estimated=estimated,
                tokens_cache_read=response.tokens_cache_read if response else 0,
                tokens_cache_write=response.tokens_cache_write if response else 0,
            )
        )
        settle_permit(deps, spec, permit, response, error)
    return _Answer(response, validated, error)


def _maybe_served(error: KeelError | None) -> bool:
    """Whether a call that brought no answer may still have been served, and billed, by the provider:
    it timed out or lost its connection after the request went out, or it was cut short (``None``: a
    cancellation or a bug mid-call). Its usage is then Keel's estimate, never silently nothing."""
    if error is None:
        return True
    return isinstance(error, ProviderTimeout | ProviderConnectionError) and error.sent


def _deadline_passed(deadline_s: float, attempts: list[Attempt], last_error: KeelError | None) -> DeadlineExceeded:
    last = f"; last failure: {last_error.reason}: {last_error}" if last_error else ""
    return DeadlineExceeded(f"the {deadline_s:g} s deadline passed after {len(attempts)} attempt(s){last}")


def _no_model(chain: list[ModelSpec], prompt_tokens: int) -> NoModelAvailable:
    """Why no model can start: only open circuits (they will close), or context windows too small."""
    windows = ", ".join(f"{s.key} ({s.context_window or 'any'} tokens)" for s in chain)
    if first_model(chain, prompt_tokens=prompt_tokens, unavailable=frozenset()) is not None:
        return CircuitOpen(f"every model that fits this event has an open circuit (chain: {windows})")
    return NoModelAvailable(
        f"no model in the chain has a context window for this event (prompt ~{prompt_tokens} tokens; chain: {windows})"
    )
