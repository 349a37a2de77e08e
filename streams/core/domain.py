"""Plain values that flow through the pipeline: what came in, what happened, how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One input record exactly as Kafka delivered it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes
    headers: Headers = ()

    @property
    def position(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


def undecodable_id(source: SourceRecord) -> str:
    """The id of an input record whose bytes cannot be decoded: stable across redeliveries."""
    return f"undecodable:{source.position}"


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """A decoded request envelope (schemas/request.avsc)."""

    event_id: str
    occurred_at_ms: int
    tenant: str
    source_system: str
    business_key: str
    payload: dict[str, Any]
    payload_json: str
    trace_id: str | None = None


class Stage(StrEnum):
    """Where an event failed; dead letters and audit records name it."""

    DECODE = "decode"
    CONTEXT = "context"  # a context lookup (streams/pipeline/context.py)
    PROMPT = "prompt"
    MODEL = "model"
    PARSE = "parse"
    VALIDATE = "validate"
    TOOL = "tool"  # a tool call the model asked for (streams/pipeline/tool_loop.py)
    REVIEW = "review"  # a reviewer rejected the output (streams/review/apply.py)
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one model; every attempt becomes a usage record."""

    provider: str
    model: str
    number: int
    started_at_ms: int
    latency_s: float
    tokens_in: int
    tokens_out: int
    model_version: str | None
    outcome: str  # "ok" or the failure's reason code
    purpose: str = "initial"  # initial | retry | reask | trim | fallback | tier_retry
    queued_s: float = 0.0  # waited for a slot of its model before the request was sent (max_concurrent)
    tokens_estimated: bool = False  # tokens_in is Keel's estimate: the provider sent no usage (timeout, cut off)
    kind: str = "model"  # model | tool (then provider is the connector, model the tool, purpose tool)
    response_bytes: int = 0  # a tool call's answer
    tokens_cache_read: int = 0  # of tokens_in: served from the provider's prompt cache (priced apart)
    tokens_cache_write: int = 0  # of tokens_in: written to it


@dataclass(frozen=True, slots=True)
class Failure:
    stage: Stage
    error_class: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Trace:
    """What happened to one event on its way through the pipeline, whatever the outcome.

    ``source`` is the record as it first arrived on the input topic, also when this pass read it from a
    retry tier; ``attempts`` are all of the event's attempts, the first ``earlier_attempts`` of them
    made (and already counted in usage) in earlier tiers."""

    source: SourceRecord
    received_at_ms: int
    event: RequestEvent | None = None
    prompt_hash: str | None = None
    attempts: tuple[Attempt, ...] = ()
    decode_ms: float = 0.0
    total_ms: float = 0.0
    earlier_attempts: int = 0
    tier: int = 0  # 0: read from the input topic; n: from retry tier n
    pass_number: int = 0  # 0: the first pass; each retry tier, parking, re-run or replay before it adds 1
    skipped_models: tuple[str, ...] = ()  # provider/models this pass left out (a reviewer's re-run)

    @property
    def event_id(self) -> str:
        return self.event.event_id if self.event is not None else undecodable_id(self.source)

    @property
    def new_attempts(self) -> tuple[Attempt, ...]:
        """The attempts of this pass: each becomes a usage record once."""
        return self.attempts[self.earlier_attempts :]

    @property
    def model_ms(self) -> float:
        """This pass's time in model calls."""
        return sum(a.latency_s for a in self.new_attempts) * 1000


@dataclass(frozen=True, slots=True)
class Result:
    """A validated output, released to the results topic."""

    trace: Trace
    output: dict[str, Any]  # Avro-ready value for the agent's output schema
    output_json: str
    model_version: str
    route: str = "autonomous"  # autonomous, or flag: released and also shown to a human
    warnings: tuple[str, ...] = field(default=())
    flagged: Review | None = None  # with route flag: the review item written besides the result

    @property
    def rule(self) -> str | None:
        """The handoff rule that chose the route: the flagged item's (an autonomous result has none)."""
        return self.flagged.rule if self.flagged is not None else None


@dataclass(frozen=True, slots=True)
class Review:
    """Held for a human: nothing is released until a reviewer decides."""

    trace: Trace
    reason: str  # stable code: why a human must look (model_refused, deadline_exceeded, ...)
    message: str
    prompt: tuple[tuple[str, str], ...]  # the rendered messages, (role, content)
    output_json: str | None = None
    route: str = "review"  # review: held for a human; flag: released too (streams/pipeline/handoff.py)
    rule: str | None = None  # the handoff rule that chose the route; None: the reliability policy did
    output_model: str | None = None  # provider/model of the chain entry that produced output_json
    output_model_version: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that could not become a result; keeps the original record and says why."""

    trace: Trace
    failure: Failure


@dataclass(frozen=True, slots=True)
class RetryLater:
    """A transient failure outlasted the in-line retries: the event waits in retry tier ``tier``."""

    trace: Trace
    failure: Failure
    tier: int


@dataclass(frozen=True, slots=True)
class Parked:
    """A hard budget limit was reached: the event waits in the agent's parking topic until the
    ``period`` of ``scope`` ends (``until_ms``) or the budget is raised, then runs again."""

    trace: Trace
    failure: Failure
    scope: str
    period: str
    until_ms: int


Outcome = Result | Review | DeadLetter | RetryLater | Parked


def outcome_name(outcome: Outcome) -> str:
    """``result``, ``review``, ``dead_letter``, ``retry_tier`` or ``parked``: as records, audit and
    metrics name it."""
    if isinstance(outcome, Result):
        return "result"
    if isinstance(outcome, Review):
        return "review"
    if isinstance(outcome, DeadLetter):
        return "dead_letter"
    return "retry_tier" if isinstance(outcome, RetryLater) else "parked"
