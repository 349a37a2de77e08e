"""What a model call takes from the worker's shared capacity: a rate-limit permit, a model slot, and the
circuit breakers' view of the provider's health (the shared pieces of ``Deps``).

``streams.pipeline.chain`` asks for them around every call; the decisions (how long to wait, what
counts against a circuit) are here, the state is the limiter's, the slots' and the breakers'.
"""

from __future__ import annotations

import logging
import math

from streams.agent.definition import Agent, ModelSpec
from streams.core.errors import (
    ContextLengthExceeded,
    KeelError,
    ModelRefused,
    OutputError,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderRequestRejected,
    RateLimitWait,
)
from streams.core.ports.model import ChatMessage, ModelResponse
from streams.pipeline.circuit import CircuitState
from streams.pipeline.deps import Deps
from streams.pipeline.model_slots import Slot
from streams.pipeline.rate_limit import Permit, estimate_tokens

log = logging.getLogger(__name__)


async def acquire_permit(
    agent: Agent, spec: ModelSpec, messages: list[ChatMessage], deps: Deps, *, remaining_s: float
) -> Permit | RateLimitWait:
    """Wait for the rate limiter, but leave the call its timeout (or half the time left, if less)."""
    reserve_s = min(spec.timeout_s, remaining_s / 2)
    tokens = estimate_tokens(messages, spec.parameters)
    granted = await deps.limiter.acquire(agent.name, spec.key, tokens=tokens, max_wait_s=remaining_s - reserve_s)
    if isinstance(granted, Permit):
        return granted
    wait = "this worker has no share of it" if math.isinf(granted.wait_s) else f"waiting {granted.wait_s:.1f} s"
    message = f"{spec.key}: {granted.limit} limit: {wait}, and the event's deadline does not leave that"
    return RateLimitWait(message, retry_after_s=granted.wait_s + reserve_s)  # when the call could be done


async def take_slot(spec: ModelSpec, deps: Deps, permit: Permit | None, *, max_wait_s: float) -> Slot | None:
    """A slot of the model; when none comes (in time, or the wait is cancelled) the call is not made,
    and the rate limiter gets its permit back."""
    slot: Slot | None = None
    try:
        slot = await deps.slots.acquire(spec.key, max_wait_s=max_wait_s)
    finally:
        if slot is None and permit is not None:
            deps.limiter.settle(permit, spec.key, tokens_used=0, limits=None)
    return slot


def settle_permit(
    deps: Deps, spec: ModelSpec, permit: Permit | None, response: ModelResponse | None, error: KeelError | None
) -> None:
    """Tell the limiter what the call used and what the provider said about its limits."""
    limits = response.rate_limits if response else error.limits if isinstance(error, ProviderError) else None
    if permit is not None or limits is not None:
        used = response.tokens_in + response.tokens_out if response else 0
        deps.limiter.settle(permit, spec.key, tokens_used=used or None, limits=limits)


def record_health(deps: Deps, spec: ModelSpec, error: KeelError | None) -> None:
    """Provider failures count against the circuit; a provider that answered (even badly) is healthy."""
    if isinstance(error, ProviderRateLimited):  # not broken, only busy: the limiter holds its calls instead
        deps.breakers.release(spec.key)
        return
    if error is None or isinstance(error, OutputError | ModelRefused | ContextLengthExceeded | ProviderRequestRejected):
        deps.breakers.record_success(spec.key)
    elif isinstance(error, ProviderError):
        auth = isinstance(error, ProviderAuthError)
        if auth:  # an operator must act: a key is wrong, revoked or out of quota
            log.error("provider %s rejected Keel's credentials for %s: %s", spec.provider, spec.key, error)
        deps.breakers.record_failure(spec.key, deps.clock.monotonic(), reason=error.reason, trip=auth)
    else:
        deps.breakers.release(spec.key)


def open_circuits(chain: list[ModelSpec], deps: Deps) -> frozenset[int]:
    now = deps.clock.monotonic()
    return frozenset(i for i, spec in enumerate(chain) if deps.breakers.state(spec.key, now) is CircuitState.OPEN)
