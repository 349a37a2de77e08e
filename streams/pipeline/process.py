"""process(raw) -> Outcome: decode, render the prompt, run the model chain, parse, validate.

No Kafka and no HTTP here: models are reached through the ``ModelClient`` port and time through the
``Clock`` port (see ``streams.pipeline.deps.Deps``). Expected failures become a ``DeadLetter`` (or a ``Review``
when the agent's policy says so) naming the stage, or a ``RetryLater`` when the failure is transient
and the agent has a retry tier left; anything unexpected is a bug that is still turned
into a dead letter here, so the worker keeps running and the event is kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from streams.agent.definition import Agent, ModelSpec
from streams.agent.prompt import RenderedPrompt, render_prompt
from streams.core.domain import (
    Attempt,
    DeadLetter,
    Failure,
    Outcome,
    Parked,
    RequestEvent,
    Result,
    RetryLater,
    Review,
    SourceRecord,
    Stage,
    Trace,
)
from streams.core.errors import BudgetExhausted, KeelError, ModelVersionChanged, NoModelLeftForRerun
from streams.core.ports.clock import Clock
from streams.pipeline.chain import ChainSuccess, run_chain, stage_of
from streams.pipeline.context import look_up
from streams.pipeline.decode import Decoded, read_source
from streams.pipeline.deps import Deps
from streams.pipeline.fallback import next_tier
from streams.pipeline.handoff import HandoffDecision, decide_handoff, without_models
from streams.pipeline.stopped import ChainStopped
from streams.pipeline.tool_journal import JournalStore, MemoryJournal
from streams.pipeline.tool_loop import Decision, ToolLoop

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Run:
    """Mutable progress of one event; frozen into a ``Trace`` when the event ends."""

    source: SourceRecord
    clock: Clock
    received_at_ms: int
    started: float
    tier: int
    attempts: list[Attempt]
    earlier_attempts: int
    pass_number: int
    skipped_models: tuple[str, ...] = ()
    stage: Stage = Stage.DECODE
    event: RequestEvent | None = None
    prompt: RenderedPrompt | None = None
    decode_ms: float = 0.0

    def trace(self) -> Trace:
        return Trace(
            source=self.source,
            received_at_ms=self.received_at_ms,
            event=self.event,
            prompt_hash=self.prompt.hash if self.prompt else None,
            attempts=tuple(self.attempts),
            earlier_attempts=self.earlier_attempts,
            tier=self.tier,
            pass_number=self.pass_number,
            skipped_models=self.skipped_models,
            decode_ms=self.decode_ms,
            total_ms=(self.clock.monotonic() - self.started) * 1000,
        )

    def failure(self, error: KeelError) -> Failure:
        return Failure(self.stage, type(error).__name__, error.reason, str(error))

    def dead_letter(self, error: KeelError) -> DeadLetter:
        return DeadLetter(self.trace(), self.failure(error))


async def process(
    source: SourceRecord,
    agent: Agent,
    deps: Deps,
    *,
    tier: int = 0,
    earlier: tuple[Attempt, ...] = (),
    decoded: Decoded | None = None,
    pass_number: int = 0,
    skip_models: tuple[str, ...] = (),
    journal: JournalStore | None = None,
    generation: int = 0,
) -> Outcome:
    """``source`` is the record as it first arrived; ``tier`` the retry tier this pass runs in (0: the
    input topic), after the ``earlier`` attempts of the passes before it (see streams/contracts/retry.py), and
    ``pass_number`` its number; ``decoded``: the record already decoded (by the worker, which needs
    its event id first); ``skip_models``: provider/models left out of the chain (a re-run after a
    reviewer rejected their outputs, streams/pipeline/handoff.py); ``journal``: where the event's tool
    loop is kept (streams/pipeline/tool_journal.py), and ``generation``, which decision of the event
    this is (0, or the pass of the re-run or replay that decides it anew)."""
    now_ms, started = deps.clock.now_ms(), deps.clock.monotonic()
    run = _Run(source, deps.clock, now_ms, started, tier, list(earlier), len(earlier), pass_number, skip_models)
    try:
        decoded = decoded or read_source(deps.catalogue, source, max_event_bytes=deps.max_event_bytes, clock=deps.clock)
        run.decode_ms = decoded.ms
        if decoded.error is not None:
            raise decoded.error
        run.event = decoded.event
        assert run.event is not None
        run.stage = Stage.CONTEXT
        deadline = run.started + agent.definition.reliability.deadline_s
        context = await look_up(agent, run.event, deps, run.attempts, deadline=deadline)
        run.stage = Stage.PROMPT
        run.prompt = render_prompt(agent.templates, run.event, context=context)
        trimmed = _trimmed(agent, run.event, run.prompt, context)
        run.stage = Stage.MODEL
        tools = await _tool_loop(
            agent, deps, run, Decision(run.event.event_id, generation, pass_number, journal or MemoryJournal())
        )
        success = await run_chain(
            _chain_of(agent, skip_models),
            run.prompt,
            deps,
            run.attempts,
            started=run.started,
            trimmed=trimmed,
            purpose="tier_retry" if tier else "step" if tools is not None and tools.steps else "initial",
            tenant=run.event.tenant,
            tools=tools,
        )
        run.prompt = success.prompt
    except ChainStopped as stop:
        run.stage = run.stage if run.stage is Stage.CONTEXT else stage_of(stop.error)
        if isinstance(stop.error, BudgetExhausted):
            error = stop.error
            return Parked(run.trace(), run.failure(error), error.scope, error.period, error.until_ms)
        if stop.route == "review":
            return Review(run.trace(), stop.error.reason, str(stop.error), _messages(run.prompt))
        retry_tier = next_tier(stop.error, tier=tier, delays_s=agent.definition.reliability.retry_delays_s)
        if retry_tier is not None:
            return RetryLater(run.trace(), run.failure(stop.error), retry_tier)
        return run.dead_letter(stop.error)
    except KeelError as exc:
        return run.dead_letter(exc)
    except Exception as exc:  # a bug: keep the event and the worker, say what broke
        log.exception("internal error processing %s for agent %s", source.position, agent.name)
        run.stage = Stage.INTERNAL
        return DeadLetter(
            run.trace(), Failure(Stage.INTERNAL, type(exc).__name__, "internal_error", f"{type(exc).__name__}: {exc}")
        )
    return _routed(agent, run, success)


async def _tool_loop(agent: Agent, deps: Deps, run: _Run, decision: Decision) -> ToolLoop | None:
    """The event's tool loop, gone on from its journal; None when the agent has no tools, or ``deps``
    no connectors (`keel eval`, which offers no tools: the worker checks its agents' at start)."""
    if agent.definition.tools is None or deps.toolbox is None:
        return None
    loop = ToolLoop(agent, deps, decision, first_of_pass=run.earlier_attempts)
    deadline = run.started + agent.definition.reliability.deadline_s
    await loop.resume(run.attempts, deadline=deadline)
    return loop


def _messages(prompt: RenderedPrompt | None) -> tuple[tuple[str, str], ...]:
    """The rendered messages as a review item shows them: (role, content)."""
    return tuple((m.role, m.content) for m in prompt.messages) if prompt else ()


def _chain_of(agent: Agent, skip_models: tuple[str, ...]) -> Agent:
    if not skip_models:
        return agent
    remaining = without_models(agent, skip_models)
    if remaining is None:
        skipped = ", ".join(skip_models)
        raise NoModelLeftForRerun(f"a re-run without {skipped} has no other model in {agent.name}'s chain")
    return remaining


def _routed(agent: Agent, run: _Run, success: ChainSuccess) -> Result | Review | DeadLetter:
    """The validated output as the agent's handoff policy routes it: a result, a review item held for a
    human, or a result that is also flagged for one. A model version other than the one the chain entry
    pins goes as the entry declares (``on_version_change``)."""
    assert run.event is not None
    answered = run.attempts[-1]  # the chain returns on the attempt whose answer validated
    output_model = f"{answered.provider}/{answered.model}"
    validated, trace = success.validated, run.trace()
    model_version = success.response.model_version
    spec = next((s for s in agent.definition.model_chain if s.key == output_model), None)
    changed = version_change(spec, model_version) if spec is not None else None
    warnings = validated.warnings if changed is None else (*validated.warnings, changed)
    if changed is not None and spec is not None and spec.on_version_change == "dead_letter":
        return DeadLetter(trace, Failure(Stage.MODEL, "ModelVersionChanged", ModelVersionChanged.reason, changed))
    decision = decide_handoff(
        agent.definition.handoff,
        validated.value,
        warnings=warnings,
        used_fallback=output_model != agent.definition.model_chain[0].key,
        event_id=run.event.event_id,
    )
    reason = decision.reason
    if changed is not None and spec is not None and spec.on_version_change == "review":
        decision, reason = HandoffDecision("review", None, changed), ModelVersionChanged.reason
    if decision.route == "autonomous":
        return Result(trace, validated.value, validated.json, model_version, warnings=warnings)
    review = Review(
        trace,
        reason,
        decision.why,
        _messages(success.prompt),
        output_json=validated.json,
        route=decision.route,
        rule=decision.rule,
        output_model=output_model,
        output_model_version=model_version,
        warnings=warnings,
    )
    if decision.route == "review":
        return review
    return Result(
        trace,
        validated.value,
        validated.json,
        model_version,
        route="flag",
        warnings=warnings,
        flagged=review,
    )


def version_change(spec: ModelSpec, reported: str) -> str | None:
    """The warning when ``reported`` (``model[+fingerprint]``) is not the version ``spec`` pins; None when
    it is, or when nothing is pinned."""
    if spec.version is None or reported.split("+", 1)[0] == spec.version:
        return None
    return f"{ModelVersionChanged.reason}: {spec.key} reported {reported!r}, pinned {spec.version!r}"


def _trimmed(
    agent: Agent, event: RequestEvent, prompt: RenderedPrompt, context: dict[str, Any]
) -> RenderedPrompt | None:
    """The prompt without its optional context, when the agent allows it and it is any shorter."""
    if not agent.definition.prompt.trim_optional_context:
        return None
    trimmed = render_prompt(agent.templates, event, trim=True, context=context)
    return trimmed if trimmed.chars < prompt.chars else None
