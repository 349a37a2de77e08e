"""An aiokafka consumer stand-in for the readers' unit tests: the test writes records (or errors) to
its partitions, and the reader fetches them in order, as it would from a broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import ConsumerStoppedError
from hostile_records import Hostile


@dataclass(frozen=True, slots=True)
class Record:
    """What a reader uses of an aiokafka ``ConsumerRecord``."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int = 1_800_000_000_000  # ms, as aiokafka gives it


@dataclass
class StandInConsumer:
    """Records wait in their partitions until fetched; an error written with ``fail`` is raised by the
    next fetch. Partitions are assigned (``assign``, or the topics given to ``subscribe``)."""

    partitions: int = 1
    logs: dict[TopicPartition, list[Record]] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    commits: list[dict[TopicPartition, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    fetched: asyncio.Event = field(default_factory=asyncio.Event)  # set by each fetch that found nothing new
    paused: set[TopicPartition] = field(default_factory=set)
    fetches: int = 0
    stopped: bool = False
    listener: Any = None

    def write(self, tp: TopicPartition, value: bytes | None, *, key: bytes | None = None, headers: Any = ()) -> Record:
        log = self.logs.setdefault(tp, [])
        record = Record(tp.topic, tp.partition, len(log), key, value, tuple(headers))
        log.append(record)
        return record

    def write_all(self, tp: TopicPartition, hostile: Iterable[Hostile]) -> list[Record]:
        return [self.write(tp, h.value, key=h.key, headers=h.headers) for h in hostile]

    def fail(self, error: BaseException) -> None:
        self.errors.append(error)

    async def idle(self) -> None:
        """Until the reader has fetched everything written so far (and asked for more)."""
        self.fetched.clear()
        await self.fetched.wait()

    # --- what the readers call ---------------------------------------------------------------------

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.listener = listener
        self.assign([TopicPartition(t, p) for t in topics for p in range(self.partitions)])

    def assign(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.positions.setdefault(tp, 0)
            self.logs.setdefault(tp, [])

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_end(self, tp: TopicPartition) -> None:
        self.positions[tp] = len(self.logs.get(tp, []))

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs.get(tp, [])) for tp in tps}

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        if self.stopped:
            raise ConsumerStoppedError
        await asyncio.sleep(0)  # a fetch gives the loop a turn, as a real one does
        self.fetches += 1
        if self.errors:
            raise self.errors.pop(0)
        batch: dict[TopicPartition, list[Record]] = {}
        for tp in [tp for tp in tps or list(self.positions) if tp not in self.paused]:
            records = self.logs.get(tp, [])[self.positions[tp] :][:max_records]
            if records:
                batch[tp] = records
                self.positions[tp] += len(records)
        if not batch:
            self.fetched.set()
            await asyncio.sleep(0.001)  # nothing new: the broker's fetch wait, kept short
        return batch

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append(dict(offsets))

    def committed(self, tp: TopicPartition) -> int | None:
        """The offset last committed for ``tp``."""
        done = [c[tp] for c in self.commits if tp in c]
        return None if not done else getattr(done[-1], "offset", done[-1])
