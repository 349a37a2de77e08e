"""Per-model concurrency: at most ``max_concurrent`` calls to one model at once in this worker.

A server such as the embedded llama.cpp answers one request at a time; more requests only queue
inside it, where their HTTP timeouts run out while they wait. Here the queue is Keel's: a call waits
for a *slot* of its model (``provider/model``), shared by every agent of the worker, in arrival order,
and its request (with its whole ``timeout_s``) is sent only once it holds one. The wait is bounded by
the caller (the event's deadline): a call that gets no slot in time is not made.

The limit of a model is the lowest of its provider's ``max_concurrent`` (settings) and every
``max_concurrent`` a chain entry of that model declares (agent files); a model without any is not
limited and never waits here. This is the rate limiter's sibling (streams/pipeline/limiter.py): that one spaces
calls out over time, this one bounds how many are open at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from streams.agent.definition import ModelSpec
from streams.core.ports.clock import Clock, SystemClock


@dataclass(frozen=True, slots=True)
class Slot:
    """A call's place among its model's open calls; ``waited_s``: how long it queued for it."""

    model_key: str
    waited_s: float
    limited: bool  # False: the model has no limit (nothing to give back)


class SlotObserver(Protocol):
    def waited(self, model_key: str, seconds: float) -> None: ...

    def gave_up(self, model_key: str, seconds: float) -> None: ...


class _Unobserved:
    def waited(self, model_key: str, seconds: float) -> None:
        return None

    def gave_up(self, model_key: str, seconds: float) -> None:
        return None


def slot_limits(provider_limits: Mapping[str, int | None], specs: Iterable[ModelSpec]) -> dict[str, int]:
    """Each model's limit: the lowest of its provider's and its chain entries' ``max_concurrent``."""
    limits: dict[str, int] = {}
    for spec in specs:
        declared = [n for n in (provider_limits.get(spec.provider), spec.max_concurrent, limits.get(spec.key)) if n]
        if declared:
            limits[spec.key] = min(declared)
    return limits


class ModelSlots:
    """The worker's slots, by model key. ``acquire`` before a call, ``release`` after it."""

    def __init__(self, limits: Mapping[str, int], clock: Clock) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._open: dict[str, int] = dict.fromkeys(self._limits, 0)
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {key: deque() for key in self._limits}
        self.observer: SlotObserver = _Unobserved()

    def limit(self, model_key: str) -> int | None:
        return self._limits.get(model_key)

    def waiting(self, model_key: str) -> int:
        """Calls queued for a slot of the model now."""
        return len(self._waiters.get(model_key, ()))

    async def acquire(self, model_key: str, *, max_wait_s: float) -> Slot | None:
        """A slot of ``model_key``, at once or after the calls queued before this one; None when none
        came within ``max_wait_s`` (the call must not be made)."""
        limit = self._limits.get(model_key)
        if limit is None:
            return Slot(model_key, 0.0, limited=False)
        if self._open[model_key] < limit:  # calls queue only while every slot is out (release hands it on)
            self._open[model_key] += 1
            self.observer.waited(model_key, 0.0)
            return Slot(model_key, 0.0, limited=True)
        began = self._clock.monotonic()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[model_key].append(turn)
        got = await self._wait(model_key, turn, max_wait_s)
        waited_s = self._clock.monotonic() - began
        if not got:
            self.observer.gave_up(model_key, waited_s)
            return None
        self.observer.waited(model_key, waited_s)
        return Slot(model_key, waited_s, limited=True)

    async def _wait(self, model_key: str, turn: asyncio.Future[None], max_wait_s: float) -> bool:
        """Until ``release`` hands ``turn`` a slot (True) or ``max_wait_s`` passes on the clock (False)."""
        timer = asyncio.ensure_future(self._clock.sleep(max(0.0, max_wait_s)))
        try:
            await asyncio.wait((turn, timer), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while queued: a slot handed over meanwhile goes to the next
            self._leave(model_key, turn)
            raise
        finally:
            timer.cancel()
        if turn.done():
            return True
        self._leave(model_key, turn)
        return False

    def _leave(self, model_key: str, turn: asyncio.Future[None]) -> None:
        if turn.done() and not turn.cancelled():
            self._hand_on(model_key)
            return
        turn.cancel()
        self._waiters[model_key].remove(turn)

    def release(self, slot: Slot) -> None:
        if slot.limited:
            self._hand_on(slot.model_key)

    def _hand_on(self, model_key: str) -> None:
        """A slot is free: the longest-waiting call takes it over, else it is open again."""
        waiters = self._waiters[model_key]
        if waiters:  # only calls still waiting are queued: one that left took itself out
            waiters.popleft().set_result(None)
        else:
            self._open[model_key] -= 1


NO_SLOTS = ModelSlots({}, SystemClock())  # no model limited: the default of ``Deps``
