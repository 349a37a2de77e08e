"""The worker's intake over a consumer stand-in: order per partition, commits only past ended events,
a waiting partition paused while the others go on, and revocation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaConnectionError

from streams.core.settings import Settings
from streams.kafka.inflight import Inflight, Limit
from streams.kafka.intake import Intake

IN0, IN1, TIER0 = TopicPartition("in", 0), TopicPartition("in", 1), TopicPartition("tier", 0)


class Consumer:
    """What the intake uses of an aiokafka consumer; the test hands out the batches."""

    def __init__(self) -> None:
        self.batches: asyncio.Queue[dict[TopicPartition, list[Any]]] = asyncio.Queue()
        self.commits: list[dict[TopicPartition, int]] = []
        self.paused: set[TopicPartition] = set()
        self.ends: dict[TopicPartition, int] = {}
        self.stopped = False
        self.away = 0  # the next fetches that fail as if the broker were away for a moment

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topics = topics

    async def start(self) -> None:
        return None

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        if self.stopped:
            raise ConsumerStoppedError
        if self.away:
            self.away -= 1
            raise KafkaConnectionError
        try:
            return await asyncio.wait_for(self.batches.get(), timeout_ms / 1000)
        except TimeoutError:
            return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def pause(self, tp: TopicPartition) -> None:
        self.paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self.paused.discard(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.ends.get(tp)

    async def stop(self) -> None:
        self.stopped = True

    def give(self, tp: TopicPartition, *offsets: int) -> None:
        records = [SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=o, key=None) for o in offsets]
        self.batches.put_nowait({tp: records})

    def committed(self) -> dict[TopicPartition, int]:
        merged: dict[TopicPartition, int] = {}
        for commit in self.commits:
            merged.update(commit)
        return merged


class Gates:
    """Per (partition, offset): when its event may end, and, on the tier topic, when it is due."""

    def __init__(self) -> None:
        self.gates: dict[tuple[TopicPartition, int], asyncio.Event] = {}
        self.started: list[tuple[TopicPartition, int]] = []

    def gate(self, tp: TopicPartition, offset: int) -> asyncio.Event:
        return self.gates.setdefault((tp, offset), asyncio.Event())

    def open(self, tp: TopicPartition, *offsets: int) -> None:
        for offset in offsets:
            self.gate(tp, offset).set()


@dataclass
class Rig:
    consumer: Consumer
    gates: Gates
    intake: Intake
    revoked: list[set[TopicPartition]]  # what the worker heard of, in order


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """An intake of topics "in" and "tier"; ``indirect`` parameters change its settings."""
    inflight, consumer, gates, limit = Inflight(10), Consumer(), Gates(), Limit(10)
    revoked: list[set[TopicPartition]] = []

    def deliver(due: bool) -> Callable[[Any, Callable[[], None]], Any]:
        async def hand_on(record: Any, ack: Callable[[], None]) -> None:
            tp = TopicPartition(record.topic, record.partition)
            if due:  # a retry tier's record waits until it is due
                await gates.gate(TopicPartition("due", record.partition), record.offset).wait()

            async def work(decided: Callable[[], None]) -> None:
                gates.started.append((tp, record.offset))
                await gates.gate(tp, record.offset).wait()

            await inflight.start(tp, record.offset, (tp, record.offset), work, ack, agent_limit=limit)

        return hand_on

    async def on_revoke(tps: set[TopicPartition]) -> None:
        revoked.append(tps)

    fatal: list[tuple[str, BaseException]] = []  # the worker would exit for a restart
    intake = Intake(
        Settings(**{"commit_interval_s": 0.05, "revoke_grace_s": 0.1, **getattr(request, "param", {})}),
        {"in": deliver(False), "tier": deliver(True)},
        inflight,
        assigned=lambda _: None,
        revoked=on_revoke,
        fatal=lambda what, exc: fatal.append((what, exc)),
        consumer=consumer,
    )
    reading = asyncio.create_task(intake.run())
    yield Rig(consumer, gates, intake, revoked)
    await inflight.drain(grace_s=0)
    await intake.stop()
    await reading
    assert not fatal


async def settle(seconds: float = 0.15) -> None:
    await asyncio.sleep(seconds)  # a few commit intervals


async def test_offsets_are_committed_only_up_to_the_lowest_unfinished_event(rig: Rig) -> None:
    rig.consumer.give(IN0, 10, 11, 12, 13)
    await settle()
    assert rig.gates.started == [(IN0, 10), (IN0, 11), (IN0, 12), (IN0, 13)]  # in offset order, overlapping
    rig.gates.open(IN0, 11, 12)
    await settle()
    assert IN0 not in rig.consumer.committed()  # 10 is still running
    rig.gates.open(IN0, 10)
    await settle()
    assert rig.consumer.committed()[IN0] == 13
    rig.gates.open(IN0, 13)
    await settle()
    assert rig.consumer.committed()[IN0] == 14
    rig.consumer.ends[IN0] = 20
    assert rig.intake.lag() == [("in", 0, 6)]


async def test_a_waiting_partition_is_paused_while_the_others_go_on(rig: Rig) -> None:
    rig.consumer.give(TIER0, 0, 1)  # 0 is not due yet
    await settle()
    rig.consumer.give(TIER0, 2)  # its feeder is still busy: no more of that partition for now
    rig.consumer.give(IN1, 5)
    await settle()
    assert rig.consumer.paused == {TIER0}
    assert rig.gates.started == [(IN1, 5)]
    rig.gates.open(IN1, 5)
    await settle()
    assert rig.consumer.committed() == {IN1: 6}
    rig.gates.open(TopicPartition("due", 0), 0, 1, 2)
    await settle()
    assert rig.consumer.paused == set()  # everything handed on: the partition is read again
    assert [offset for tp, offset in rig.gates.started if tp == TIER0] == [0, 1, 2]


@pytest.mark.parametrize("rig", [{"commit_interval_s": 60}], indirect=True)  # only the revocation commits
async def test_revocation_commits_what_ended_and_hands_on_nothing_more(rig: Rig) -> None:
    rig.consumer.give(IN0, 0, 1)
    rig.consumer.give(TIER0, 0)  # waits: never handed on
    rig.consumer.give(IN1, 3)
    await settle()
    rig.gates.open(IN0, 0)
    await rig.intake.on_partitions_revoked({IN0, TIER0})  # 1 does not end within the grace period
    assert rig.revoked == [{IN0, TIER0}]
    assert rig.consumer.committed()[IN0] == 1 and TIER0 not in rig.consumer.committed()
    rig.gates.open(TopicPartition("due", 0), 0)
    rig.gates.open(IN0, 1)
    await settle()
    assert (TIER0, 0) not in rig.gates.started
    assert rig.consumer.committed()[IN0] == 1  # the cancelled event is its next owner's


async def test_the_intake_reads_through_a_broker_that_is_away_for_a_moment(rig: Rig) -> None:
    rig.consumer.away = 2
    async with asyncio.timeout(30):
        while rig.consumer.away:  # both failed fetches were made: the intake went on after each
            await asyncio.sleep(0.01)
        rig.consumer.give(IN0, 5)
        while (IN0, 5) not in rig.gates.started:
            await asyncio.sleep(0.01)
