"""What to do after a failed model attempt: retry, re-ask, fall back to the next model, or stop.

Pure: every input is a plain value (the chain, where we are, the error, the time left, which circuits
are open, a random number for jitter), and the answer is a plain value the chain runner carries out.

| failure                                  | decision                                                 |
|------------------------------------------|----------------------------------------------------------|
| timeout, connection, 5xx, bad response   | retry this model with jittered backoff, then next model  |
| 429                                      | retry after Retry-After if it fits the deadline, else next|
| 401/403                                  | next model (no retry: the key will not start working)    |
| context length exceeded                  | trim optional context if allowed, else a larger window   |
| refusal / content filter                 | next model, or review when the policy says so            |
| answer not JSON / schema violation       | re-ask this model with the problems, then next model     |
| request rejected (other 4xx)             | next model                                               |
| nothing left to try                      | stop: dead letter (review when the policy says so)       |

A stop on a transient failure (``next_tier``) is not the end yet: the event waits in the next retry tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streams.agent.definition import ModelSpec, ReliabilityPolicy
from streams.core.errors import (
    CircuitOpen,
    ContextLengthExceeded,
    KeelError,
    ModelRefused,
    OutputError,
    OutputSchemaViolation,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRequestRejected,
    ToolError,
)


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float


@dataclass(frozen=True, slots=True)
class Reask:
    feedback: str


@dataclass(frozen=True, slots=True)
class Trim:
    """Ask the same model again without the prompt's optional context."""


@dataclass(frozen=True, slots=True)
class Fallback:
    index: int


@dataclass(frozen=True, slots=True)
class Stop:
    route: str  # "dead_letter" | "review"


Decision = Retry | Reask | Trim | Fallback | Stop


@dataclass(frozen=True, slots=True)
class Position:
    """Where the chain runner stands: which model, and what it already spent on it."""

    index: int
    retries: int = 0
    reasks: int = 0


def decide(
    error: KeelError,
    *,
    chain: Sequence[ModelSpec],
    position: Position,
    policy: ReliabilityPolicy,
    remaining_s: float,
    unavailable: frozenset[int],
    jitter: float,
    can_trim: bool = False,
) -> Decision:
    """``jitter`` is a uniform draw from [0, 1); ``unavailable`` are chain indexes whose circuit is open;
    ``can_trim``: the agent allows trimming and the prompt still has optional context to leave out."""
    spec = chain[position.index]
    if isinstance(error, OutputError):
        if position.reasks < policy.max_reasks:
            return Reask(reask_feedback(error))
        return _next(chain, position.index, unavailable)
    if isinstance(error, ModelRefused):
        return Stop("review") if policy.on_refusal == "review" else _next(chain, position.index, unavailable)
    if isinstance(error, ContextLengthExceeded):
        if can_trim:
            return Trim()
        return _next(chain, position.index, unavailable, larger_than=spec.context_window)
    if isinstance(error, ProviderAuthError | ProviderRequestRejected):
        return _next(chain, position.index, unavailable)
    if isinstance(error, ProviderError) and position.retries < spec.max_retries:
        delay = backoff_s(position.retries, policy, jitter)
        if isinstance(error, ProviderRateLimited) and error.retry_after_s is not None:
            delay = error.retry_after_s
        if delay < remaining_s:
            return Retry(delay)
    return _next(chain, position.index, unavailable)


def next_tier(error: KeelError, *, tier: int, delays_s: Sequence[float]) -> int | None:
    """The retry tier for an event whose chain stopped on ``error`` during tier ``tier`` (0: the input
    topic), or None: the failure is not transient (a provider or a connector that may recover, a
    circuit that may close), or no tier is left."""
    transient = error.retriable and isinstance(error, ProviderError | CircuitOpen | ToolError)
    return tier + 1 if transient and tier < len(delays_s) else None


def backoff_s(retries_so_far: int, policy: ReliabilityPolicy, jitter: float) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^n)), so retrying workers do not move in step."""
    return jitter * min(policy.backoff_max_s, policy.backoff_base_s * float(2**retries_so_far))


def first_model(chain: Sequence[ModelSpec], *, prompt_tokens: int, unavailable: frozenset[int]) -> int | None:
    """The first model whose circuit is closed and whose context window (when declared) fits the prompt."""
    for index, spec in enumerate(chain):
        if index not in unavailable and (spec.context_window is None or spec.context_window > prompt_tokens):
            return index
    return None


def reask_feedback(error: OutputError) -> str:
    problems = error.problems if isinstance(error, OutputSchemaViolation) else [str(error)]
    listed = "\n".join(f"- {problem}" for problem in problems[:20])
    return (
        "Your previous answer could not be used:\n"
        f"{listed}\n"
        "Answer again with one JSON object only, following the required schema exactly."
    )


def _next(
    chain: Sequence[ModelSpec],
    index: int,
    unavailable: frozenset[int],
    *,
    larger_than: int | None = None,
) -> Decision:
    for later in range(index + 1, len(chain)):
        if later in unavailable:
            continue
        window = chain[later].context_window
        if larger_than is not None and window is not None and window <= larger_than:
            continue
        return Fallback(later)
    return Stop("dead_letter")
