"""process(raw) -> Outcome: decode, render the prompt, call the model, parse, validate.

No Kafka and no HTTP here: the model is reached through the ``ModelClient`` port and time through the
``Clock`` port. Expected failures become a ``DeadLetter`` naming the stage; anything unexpected is a bug
that is still turned into a dead letter here, so the worker keeps running and the event is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from streams.agents import Agent
from streams.catalogue import Catalogue
from streams.clock import Clock
from streams.decode import decode_request
from streams.domain import (
    Attempt,
    DeadLetter,
    Failure,
    Outcome,
    RequestEvent,
    Result,
    SourceRecord,
    Stage,
    Trace,
)
from streams.errors import KeelError
from streams.model import ModelClient, ModelRequest, ModelResponse
from streams.parse import ValidatedOutput, parse_json_object, validate_output
from streams.prompt import RenderedPrompt, render_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Deps:
    """What the pipeline needs from its surroundings."""

    catalogue: Catalogue
    models: Mapping[str, ModelClient]  # by provider name
    clock: Clock
    max_event_bytes: int


@dataclass(slots=True)
class _Run:
    """Mutable progress of one event; frozen into a ``Trace`` when the event ends."""

    source: SourceRecord
    clock: Clock
    received_at_ms: int
    started: float
    stage: Stage = Stage.DECODE
    event: RequestEvent | None = None
    prompt_hash: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    decode_ms: float = 0.0
    model_ms: float = 0.0

    def trace(self) -> Trace:
        return Trace(
            source=self.source,
            received_at_ms=self.received_at_ms,
            event=self.event,
            prompt_hash=self.prompt_hash,
            attempts=tuple(self.attempts),
            decode_ms=self.decode_ms,
            model_ms=self.model_ms,
            total_ms=(self.clock.monotonic() - self.started) * 1000,
        )


async def process(source: SourceRecord, agent: Agent, deps: Deps) -> Outcome:
    run = _Run(source, deps.clock, deps.clock.now_ms(), deps.clock.monotonic())
    try:
        run.event = decode_request(deps.catalogue, source.value, max_event_bytes=deps.max_event_bytes)
        run.decode_ms = (deps.clock.monotonic() - run.started) * 1000
        run.stage = Stage.PROMPT
        prompt = render_prompt(agent.templates, run.event)
        run.prompt_hash = prompt.hash
        response, validated = await _attempt(agent, prompt, deps, run)
    except KeelError as exc:
        return DeadLetter(run.trace(), Failure(run.stage, type(exc).__name__, exc.reason, str(exc)))
    except Exception as exc:  # a bug: keep the event and the worker, say what broke
        log.exception("internal error processing %s for agent %s", source.position, agent.name)
        failure = Failure(Stage.INTERNAL, type(exc).__name__, "internal_error", f"{type(exc).__name__}: {exc}")
        return DeadLetter(run.trace(), failure)
    return Result(
        trace=run.trace(),
        output=validated.value,
        output_json=validated.json,
        model_version=response.model_version,
        route=agent.definition.handoff.route,
        warnings=validated.warnings,
    )


async def _attempt(
    agent: Agent, prompt: RenderedPrompt, deps: Deps, run: _Run
) -> tuple[ModelResponse, ValidatedOutput]:
    """One model call and the validation of its answer; the attempt is recorded whatever happens."""
    spec = agent.definition.model_chain[0]  # fallback through the chain arrives with the reliability layer
    client = deps.models[spec.provider]
    request = ModelRequest(
        model=spec.model,
        messages=prompt.messages,
        timeout_s=spec.timeout_s,
        parameters=spec.parameters,
        response_schema=agent.response_schema,
        response_schema_name=agent.name,
    )
    run.stage = Stage.MODEL
    started_ms, started = deps.clock.now_ms(), deps.clock.monotonic()
    response: ModelResponse | None = None
    outcome = "internal_error"
    try:
        response = await client.complete(request)
        run.stage = Stage.PARSE
        parsed = parse_json_object(response.text, finish_reason=response.finish_reason)
        run.stage = Stage.VALIDATE
        validated = validate_output(agent.output_schema.raw, parsed)
        outcome = "ok"
        return response, validated
    except KeelError as exc:
        outcome = exc.reason
        raise
    finally:
        latency_s = response.latency_s if response else deps.clock.monotonic() - started
        run.model_ms += latency_s * 1000
        run.attempts.append(
            Attempt(
                provider=spec.provider,
                model=spec.model,
                number=len(run.attempts) + 1,
                started_at_ms=started_ms,
                latency_s=latency_s,
                tokens_in=response.tokens_in if response else 0,
                tokens_out=response.tokens_out if response else 0,
                model_version=response.model_version if response else None,
                outcome=outcome,
            )
        )
