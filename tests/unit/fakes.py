"""Test doubles for the pipeline's ports: a scripted model, clocks that only move when read or told,
a rate limiter that answers as scripted and records what the chain tells it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from random import Random

from streams.agent.definition import ModelSpec
from streams.core.catalogue import Catalogue
from streams.core.domain import Attempt
from streams.core.ports.model import ModelClient, ModelRequest, ModelResponse, ProviderLimits
from streams.cost.budget import Amount, BudgetLimits, Reservation
from streams.pipeline.circuit import CircuitBreakers
from streams.pipeline.deps import Deps
from streams.pipeline.limiter import NO_LIMITS, RateLimiter
from streams.pipeline.model_slots import NO_SLOTS, ModelSlots
from streams.pipeline.rate_limit import Permit, TooLong


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


class ManualClock:
    """Time moves only when the test calls ``advance``; a sleep ends once the time reaches its end."""

    def __init__(self) -> None:
        self.t = 100.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now_ms(self) -> int:
        return 1_800_000_000_000 + int(self.t * 1000)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.t + seconds, wake))
        self._wake()
        await wake

    @property
    def sleeping(self) -> int:
        """Sleeps not yet over (nor cancelled)."""
        return sum(1 for _, wake in self._sleepers if not wake.done())

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self._wake()

    def _wake(self) -> None:
        for end, wake in list(self._sleepers):
            if wake.done() or end <= self.t:
                self._sleepers.remove((end, wake))
                if not wake.done():
                    wake.set_result(None)


@dataclass
class ScriptedModel:
    """Answers each call with the next scripted reply (a response, or an error to raise)."""

    replies: list[ModelResponse | BaseException]
    provider: str = "sim"
    requests: list[ModelRequest] = field(default_factory=list)
    seconds_per_call: float = 0.0
    clock: FakeClock | None = None

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if self.clock is not None:
            self.clock.t += self.seconds_per_call
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def aclose(self) -> None:
        return None


def reply(text: str, finish_reason: str = "stop", model_version: str = "keel-simulator-1+sim") -> ModelResponse:
    return ModelResponse(text, model_version, 120, 40, 0.25, finish_reason)


def make_deps(
    catalogue: Catalogue,
    models: Mapping[str, ModelClient],
    *,
    clock: FakeClock | ManualClock | None = None,
    breakers: CircuitBreakers | None = None,
    limiter: RateLimiter = NO_LIMITS,
    slots: ModelSlots = NO_SLOTS,
) -> Deps:
    return Deps(
        catalogue=catalogue,
        models=models,
        clock=clock or FakeClock(),
        breakers=breakers or CircuitBreakers(failure_threshold=3, cooldown_s=30),
        rng=Random(7),
        max_event_bytes=64 * 1024,
        limiter=limiter,
        slots=slots,
    )


@dataclass
class GatedModel:
    """Each call waits until the test opens its gate (``answer``), then answers ``text``."""

    text: str
    provider: str = "a"
    requests: list[ModelRequest] = field(default_factory=list)
    gates: list[asyncio.Event] = field(default_factory=list)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        gate = asyncio.Event()
        self.requests.append(request)
        self.gates.append(gate)
        await gate.wait()
        return reply(self.text)

    def answer(self, call: int) -> None:
        self.gates[call].set()

    async def aclose(self) -> None:
        return None


@dataclass
class RecordingBudgets:
    """A budget gate that grants every reservation and records how each one was closed."""

    settled: list[Attempt] = field(default_factory=list)
    abandoned: int = 0
    released: int = 0

    def applies(self, agent: str, tenant: str | None) -> bool:
        return True

    async def reserve(
        self, agent: str, tenant: str | None, spec: ModelSpec, *, prompt_chars: int, messages: int, expires_in_s: float
    ) -> Reservation:
        return Reservation((("agent:support_triage", "r1", BudgetLimits()),), amount=Amount(1.0, 10_000))

    def settle(self, reservation: Reservation, attempt: Attempt) -> None:
        self.settled.append(attempt)

    def abandon(self, reservation: Reservation) -> None:
        self.abandoned += 1

    def release(self, reservation: Reservation) -> None:
        self.released += 1


async def settled(condition: Callable[[], bool], *, rounds: int = 1000) -> None:
    """Let the event loop run until ``condition`` holds; fails after ``rounds`` turns of it, never on time."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


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
