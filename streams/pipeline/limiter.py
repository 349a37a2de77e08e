"""The rate limiter port and its shell: the chain waits here before a model call, and reports after it.

``streams.pipeline.rate_limit`` decides (pure); this module sleeps on the ``Clock`` port, lets one *probe*
call through after a provider's hold while the others wait for its answer, takes this worker's share
of every limit from its partition assignment, and tells an observer (the worker's metrics).

A waiting call keeps its event's in-flight slot, so when every slot waits here the worker stops
taking events: backpressure, not failure. A wait that would pass the caller's ``max_wait_s`` is not
begun (``TooLong``); the chain then treats the call like a rate-limited one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from streams.core.ports.clock import Clock
from streams.core.ports.model import ProviderLimits
from streams.pipeline.rate_limit import HOLD, TP, Permit, RateLimits, TooLong, hold_from, shares

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    """What the chain asks before and tells after each model call (streams/pipeline/chain.py ``_attempt``)."""

    @property
    def idle(self) -> bool:
        """True while no limit is declared and no provider asked to hold: the chain skips ``acquire``."""
        ...

    async def acquire(self, agent: str, model_key: str, *, tokens: int, max_wait_s: float) -> Permit | TooLong:
        """Wait until a call of ``agent`` to ``model_key`` (``provider/model``), estimated at ``tokens``,
        may start; or, without waiting, how long that would take when it is more than ``max_wait_s``."""
        ...

    def settle(
        self, permit: Permit | None, model_key: str, *, tokens_used: int | None, limits: ProviderLimits | None
    ) -> None:
        """After the call: the tokens it used (None: unknown, the estimate stands) and what the provider
        said about its limits. ``permit`` is None when the call went out while the limiter was idle."""
        ...


class LimiterObserver(Protocol):
    def waited(self, agent: str, model_key: str, limit: str, seconds: float) -> None: ...

    def refused(self, agent: str, model_key: str, limit: str) -> None: ...

    def held(self, model_key: str, cause: str) -> None: ...

    def shared(self, scope: str, name: str, share: float) -> None: ...


class _Unobserved:
    def waited(self, agent: str, model_key: str, limit: str, seconds: float) -> None:
        return None

    def refused(self, agent: str, model_key: str, limit: str) -> None:
        return None

    def held(self, model_key: str, cause: str) -> None:
        return None

    def shared(self, scope: str, name: str, share: float) -> None:
        return None


class NoLimits:
    """A limiter that never waits and ignores what providers say (the default of ``Deps``)."""

    idle = True

    async def acquire(self, agent: str, model_key: str, *, tokens: int, max_wait_s: float) -> Permit | TooLong:
        return Permit(model_key, (), tokens, 0.0, None)

    def settle(
        self, permit: Permit | None, model_key: str, *, tokens_used: int | None, limits: ProviderLimits | None
    ) -> None:
        return None


NO_LIMITS = NoLimits()


class Limiter:
    """The worker's limiter. ``reads`` names, per agent and per model key, the topics whose partitions
    decide this worker's share of that agent's or model's limits (``partitions`` each)."""

    def __init__(
        self, limits: RateLimits, clock: Clock, *, reads: Mapping[str, frozenset[str]], partitions: int
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._reads = reads
        self._partitions = partitions
        self._probes: dict[str, asyncio.Event] = {}  # model key -> set when its probe call has answered
        self._idle = not limits.declared
        self.observer: LimiterObserver = _Unobserved()

    @property
    def idle(self) -> bool:
        return self._idle

    async def acquire(self, agent: str, model_key: str, *, tokens: int, max_wait_s: float) -> Permit | TooLong:
        began = self._clock.monotonic()
        permit = self._limits.reserve(agent, model_key, tokens=tokens, now=began, max_wait_s=max_wait_s)
        if isinstance(permit, TooLong):
            self.observer.refused(agent, model_key, permit.limit)
            return permit
        try:
            too_long = await self._wait(permit, deadline=began + max_wait_s)
        except BaseException:  # cancelled while waiting: the call will not be made
            self._limits.cancel(permit)
            raise
        if too_long is not None:
            self._limits.cancel(permit)
            self.observer.refused(agent, model_key, too_long.limit)
            return too_long
        permit.waited_s = self._clock.monotonic() - began
        if permit.limit is not None:
            self.observer.waited(agent, model_key, permit.limit, permit.waited_s)
        return permit

    async def _wait(self, permit: Permit, *, deadline: float) -> TooLong | None:
        """Until the permit's start, any hold placed meanwhile and a recovering model's probe call."""
        key = permit.model_key
        while True:
            now = self._clock.monotonic()
            if permit.start_at > now:
                await self._clock.sleep(permit.start_at - now)
                now = self._clock.monotonic()
            until = self._limits.held_until(key, now)
            if until is not None:  # a provider asked to hold while this call waited
                if until > deadline:
                    return TooLong(until - now, HOLD)
                permit.start_at, permit.limit = until, permit.limit or HOLD
                continue
            probe = self._probes.get(key)
            if probe is not None:  # the first call after a hold is out: its answer says whether to go
                permit.limit = permit.limit or HOLD
                try:
                    async with asyncio.timeout(deadline - now):
                        await probe.wait()
                except TimeoutError:
                    return TooLong(0.0, HOLD)  # how much longer is unknown: the probe has not answered
                continue
            if key in self._limits.recovering:
                permit.probe = True
                self._probes[key] = asyncio.Event()
            return None

    def settle(
        self, permit: Permit | None, model_key: str, *, tokens_used: int | None, limits: ProviderLimits | None
    ) -> None:
        now = self._clock.monotonic()
        hold = hold_from(limits, now) if limits is not None else None
        if hold is not None:
            self._limits.hold(model_key, hold[0])
            self.observer.held(model_key, hold[1])
        if permit is not None:
            if tokens_used is not None:
                self._limits.correct(permit, tokens_used)
            if permit.probe:
                if self._limits.held_until(model_key, now) is None:  # nobody asked to hold meanwhile
                    self._limits.recovering.discard(model_key)
                self._probes.pop(model_key).set()
        self._idle = not self._limits.declared and not self._limits.pending(now)

    def assign(self, owned: Iterable[TP]) -> None:
        """This worker's partitions after a rebalance: its share of each limit follows them."""
        if not self._limits.declared:
            return
        part = shares(list(owned), self._reads, self._partitions)
        agents = {name: part.get(name, 0.0) for name in self._limits.by_agent}
        models = {key: part.get(key, 0.0) for key in self._limits.by_model}
        self._limits.reshare(agents, models, self._clock.monotonic())
        for scope, part_of in (("agent", agents), ("model", models)):
            for name, share in part_of.items():
                self.observer.shared(scope, name, share)
        described = ", ".join(f"{name} {share:.0%}" for name, share in sorted({**agents, **models}.items()))
        log.info("rate limits: this worker's share of each limit: %s", described)
