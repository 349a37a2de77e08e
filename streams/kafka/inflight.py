"""Many events in flight at once, without losing order or committing past unfinished work.

The worker's intake (streams/kafka/intake.py) hands each event to ``Inflight.start``, which returns as soon
as the event is taken (or waits, when as many events as twice the worker's in-flight limit are taken
and not ended: backpressure, so the intake stops taking events and pauses the partition instead of
buffering without bound).
Each event runs in a task of its own:

* **slots** bound the events doing work, per agent and per worker: an event takes its slots once its
  lane lets it run, and gives them back as soon as its work says the decision is made, so neither an
  event waiting for its key's previous event nor one whose records are being written holds a model
  call's place;

* **lanes** keep order where the agent needs it: an event starts only after the previous event of its
  lane has ended. The lane is the partition plus the record key (``ordering: key``), the partition
  alone (``partition``), or the event itself (``unordered``);
* **acks** come in offset order per partition: an event is acked only once it and every earlier
  event of its partition have ended, so a committed offset never passes unfinished work;
* **revocation** gives in-flight work of revoked partitions a grace period to end, then cancels it;
  cancelled work is not acked, so the partition's next owner runs it again (the outcome store keeps a
  decision that was already recorded from being made twice).

Nothing here knows Kafka: partitions are ``(topic, partition)`` pairs and acks are callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Literal

Ordering = Literal["key", "partition", "unordered"]
TP = tuple[str, int]


def lane_of(ordering: Ordering, tp: TP, key: bytes | None, offset: int) -> Hashable:
    """Events of one lane run one after another, in offset order; lanes run concurrently."""
    if ordering == "key":
        return (tp, key)  # a key lives in one partition; keyless records share the partition's lane
    if ordering == "partition":
        return tp
    return (tp, offset)


@dataclass(slots=True)
class _Entry:
    offset: int
    ack: Callable[[], None]
    done: bool = False


@dataclass(slots=True)
class _Partition:
    entries: deque[_Entry] = field(default_factory=deque)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    epoch: int = 0  # moves on at each revocation: a start begun before it does not run


class Limit:
    """A bound on events in flight; an agent's limit is taken before the worker's (a fixed order)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_flight = 0
        self._free = asyncio.Semaphore(size)

    async def acquire(self) -> None:
        await self._free.acquire()
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._free.release()


Work = Callable[[Callable[[], None]], Awaitable[None]]  # given a callback that gives the slots back early


class _Slots:
    """An event's places under its agent's and the worker's limits, taken in that (fixed) order."""

    def __init__(self, *limits: Limit) -> None:
        self._limits = limits
        self._held: list[Limit] = []

    async def take(self) -> None:
        for limit in self._limits:
            await limit.acquire()
            self._held.append(limit)

    def give_back(self) -> None:
        while self._held:
            self._held.pop().release()


class Inflight:
    """Every event in flight in one worker, for every agent and partition."""

    def __init__(self, worker_limit: int) -> None:
        self.limit = Limit(worker_limit)
        self._taken = asyncio.Semaphore(2 * worker_limit)  # working, waiting for a lane or slot, or writing
        self._partitions: dict[TP, _Partition] = {}
        self._lanes: dict[Hashable, asyncio.Task[None]] = {}
        self._closed = False

    async def start(
        self,
        tp: TP,
        offset: int,
        lane: Hashable,
        work: Work,
        ack: Callable[[], None],
        *,
        agent_limit: Limit,
    ) -> None:
        """Run ``work`` once the lane's previous event has ended and slots are free; ``ack`` it in
        offset order. Offsets of one partition must be started in increasing order. After ``drain``
        nothing starts: the event stays unacked, for the next run."""
        if self.closed():
            return
        partition = self._partitions.setdefault(tp, _Partition())
        epoch = partition.epoch
        await self._taken.acquire()
        if self.closed() or partition.epoch != epoch:  # drained or revoked while this waited
            self._taken.release()
            return
        entry = _Entry(offset, ack)
        partition.entries.append(entry)
        previous = self._lanes.get(lane)
        task = asyncio.create_task(self._run(tp, entry, previous, work, agent_limit))
        partition.tasks.add(task)
        self._lanes[lane] = task
        task.add_done_callback(lambda done: self._ended(tp, lane, done))

    def closed(self) -> bool:
        return self._closed

    async def revoke(self, tps: Iterable[TP], *, grace_s: float) -> int:
        """Give the work of these partitions ``grace_s`` to end, cancel what is left, forget them.
        Returns how many events were cancelled."""
        partitions = [self._partitions[tp] for tp in set(tps) if tp in self._partitions]
        for partition in partitions:
            partition.epoch += 1
        tasks = [task for p in partitions for task in p.tasks]
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=grace_s)  # work ending meanwhile is still acked
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
        for partition in partitions:
            partition.entries.clear()  # cancelled work is not acked, nor anything after it
        return len(pending)

    async def drain(self, *, grace_s: float) -> int:
        """On shutdown: start nothing more, and end every partition's work as ``revoke`` does."""
        self._closed = True
        return await self.revoke(list(self._partitions), grace_s=grace_s)

    async def _run(
        self,
        tp: TP,
        entry: _Entry,
        previous: asyncio.Task[None] | None,
        work: Work,
        agent_limit: Limit,
    ) -> None:
        slots = _Slots(agent_limit, self.limit)
        try:
            if previous is not None:
                await asyncio.wait([previous])  # the lane's order; its failure or cancellation is its own
            await slots.take()
            await work(slots.give_back)
        finally:
            slots.give_back()
            self._taken.release()
        entry.done = True
        partition = self._partitions[tp]
        ready: list[_Entry] = []
        while partition.entries and partition.entries[0].done:
            ready.append(partition.entries.popleft())
        for done in ready:  # in offset order
            done.ack()

    def _ended(self, tp: TP, lane: Hashable, task: asyncio.Task[None]) -> None:
        partition = self._partitions.get(tp)
        if partition is not None:
            partition.tasks.discard(task)
        if self._lanes.get(lane) is task:
            del self._lanes[lane]
