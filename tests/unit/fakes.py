"""Test doubles for the pipeline's ports: a scripted model, a clock that only moves when told, a
rate limiter that answers as scripted and records what the chain tells it."""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from streams.catalogue import Catalogue
from streams.circuit import CircuitBreakers
from streams.limiter import NO_LIMITS, RateLimiter
from streams.model import ModelRequest, ModelResponse, ProviderLimits
from streams.ports import Deps
from streams.rate_limit import Permit, TooLong


class FakeClock:
    """Each reading advances 10 ms; sleeping advances by the time slept (and records it)."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def now_ms(self) -> int:
        return 1_800_000_000_000 + int(self.t * 1000)

    def monotonic(self) -> float:
        self.t += 0.01
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@dataclass
class ScriptedModel:
    """Answers each call with the next scripted reply (a response, or an error to raise)."""

    replies: list[ModelResponse | Exception]
    provider: str = "sim"
    requests: list[ModelRequest] = field(default_factory=list)
    seconds_per_call: float = 0.0
    clock: FakeClock | None = None

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if self.clock is not None:
            self.clock.t += self.seconds_per_call
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        return None


def reply(text: str, finish_reason: str = "stop", model_version: str = "keel-simulator-1+sim") -> ModelResponse:
    return ModelResponse(text, model_version, 120, 40, 0.25, finish_reason)


def make_deps(
    catalogue: Catalogue,
    models: dict[str, ScriptedModel],
    *,
    clock: FakeClock | None = None,
    breakers: CircuitBreakers | None = None,
    limiter: RateLimiter = NO_LIMITS,
) -> Deps:
    return Deps(
        catalogue=catalogue,
        models=models,
        clock=clock or FakeClock(),
        breakers=breakers or CircuitBreakers(failure_threshold=3, cooldown_s=30),
        rng=Random(7),
        max_event_bytes=64 * 1024,
        limiter=limiter,
    )


@dataclass
class ScriptedLimiter:
    """Answers each ``acquire`` with the next scripted wait (seconds, moved on ``clock``) or ``TooLong``;
    records every acquire and settle."""

    waits: list[float | TooLong]
    clock: FakeClock
    idle: bool = False
    acquired: list[tuple[str, str, int, float]] = field(default_factory=list)  # agent, key, tokens, max wait
    settled: list[tuple[Permit | None, str, int | None, ProviderLimits | None]] = field(default_factory=list)

    async def acquire(self, agent: str, model_key: str, *, tokens: int, max_wait_s: float) -> Permit | TooLong:
        self.acquired.append((agent, model_key, tokens, max_wait_s))
        wait = self.waits.pop(0)
        if isinstance(wait, TooLong):
            return wait
        await self.clock.sleep(wait)
        return Permit(model_key, (), tokens, self.clock.t, "model_requests" if wait else None, waited_s=wait)

    def settle(
        self, permit: Permit | None, model_key: str, *, tokens_used: int | None, limits: ProviderLimits | None
    ) -> None:
        self.settled.append((permit, model_key, tokens_used, limits))


@dataclass
class RecordingObserver:
    waits: list[tuple[str, str, float]] = field(default_factory=list)  # model key, limit, seconds
    refusals: list[tuple[str, str]] = field(default_factory=list)
    holds: list[tuple[str, str]] = field(default_factory=list)
    shares: dict[tuple[str, str], float] = field(default_factory=dict)

    def waited(self, agent: str, model_key: str, limit: str, seconds: float) -> None:
        self.waits.append((model_key, limit, seconds))

    def refused(self, agent: str, model_key: str, limit: str) -> None:
        self.refusals.append((model_key, limit))

    def held(self, model_key: str, cause: str) -> None:
        self.holds.append((model_key, cause))

    def shared(self, scope: str, name: str, share: float) -> None:
        self.shares[scope, name] = share
