"""Concurrency inside a partition: order per lane, acks in offset order, bounded, revocable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from streams.kafka.inflight import Inflight, Limit, Work, lane_of

TP0, TP1 = ("in", 0), ("in", 1)


class Events:
    """Work whose end the test decides, and a log of what ran and what was acked."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.acked: list[tuple[tuple[str, int], int]] = []
        self.release: dict[int, asyncio.Event] = {}
        self.decide: dict[int, asyncio.Event] = {}

    def work(self, offset: int) -> Work:
        gate = self.release.setdefault(offset, asyncio.Event())
        decision = self.decide.setdefault(offset, asyncio.Event())

        async def run(decided: Callable[[], None]) -> None:
            self.started.append(offset)
            await asyncio.wait(
                [asyncio.ensure_future(decision.wait()), asyncio.ensure_future(gate.wait())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            decided()  # the model work is over; what follows is writing
            await gate.wait()

        return run

    def ack(self, tp: tuple[str, int], offset: int) -> Callable[[], None]:
        return lambda: self.acked.append((tp, offset))

    def finish(self, *offsets: int) -> None:
        for offset in offsets:
            self.release.setdefault(offset, asyncio.Event()).set()

    def decided(self, *offsets: int) -> None:
        for offset in offsets:
            self.decide.setdefault(offset, asyncio.Event()).set()


async def start(
    inflight: Inflight, events: Events, tp: tuple[str, int], offset: int, lane: object, limit: Limit
) -> None:
    await inflight.start(tp, offset, lane, events.work(offset), events.ack(tp, offset), agent_limit=limit)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_acks_follow_offset_order_whatever_order_events_end_in() -> None:
    inflight, events, limit = Inflight(10), Events(), Limit(10)
    for offset in (1, 2, 3):
        await start(inflight, events, TP0, offset, offset, limit)  # three lanes: all run at once
    await settle()
    assert sorted(events.started) == [1, 2, 3]
    events.finish(3)
    events.finish(2)
    await settle()
    assert events.acked == []  # offset 1 is still running: nothing may be committed past it
    events.finish(1)
    await settle()
    assert events.acked == [(TP0, 1), (TP0, 2), (TP0, 3)]


async def test_partitions_are_acked_independently() -> None:
    inflight, events, limit = Inflight(10), Events(), Limit(10)
    await start(inflight, events, TP0, 1, "a", limit)
    await start(inflight, events, TP1, 1_001, "b", limit)
    events.finish(1_001)
    await settle()
    assert events.acked == [(TP1, 1_001)]


async def test_one_lane_runs_in_order_other_lanes_overlap() -> None:
    inflight, events, limit = Inflight(10), Events(), Limit(10)
    await start(inflight, events, TP0, 1, lane_of("key", TP0, b"k1", 1), limit)
    await start(inflight, events, TP0, 2, lane_of("key", TP0, b"k1", 2), limit)
    await start(inflight, events, TP0, 3, lane_of("key", TP0, b"k2", 3), limit)
    await settle()
    assert events.started == [1, 3]  # 2 waits for 1, its key's earlier event
    events.finish(1)
    await settle()
    assert events.started == [1, 3, 2]


def test_lanes_by_ordering_mode() -> None:
    assert lane_of("key", TP0, b"k", 5) == lane_of("key", TP0, b"k", 9) != lane_of("key", TP0, b"j", 9)
    assert (
        lane_of("partition", TP0, b"k", 5) == lane_of("partition", TP0, b"j", 9) != lane_of("partition", TP1, b"k", 5)
    )
    assert lane_of("unordered", TP0, b"k", 5) != lane_of("unordered", TP0, b"k", 6)


@pytest.mark.parametrize("limits", [(2, 10), (10, 2)])
async def test_the_limits_bound_working_events_until_one_has_decided(limits: tuple[int, int]) -> None:
    agent_limit, worker_limit = limits
    inflight, events, limit = Inflight(worker_limit), Events(), Limit(agent_limit)
    for offset in (1, 2, 3):
        await start(inflight, events, TP0, offset, offset, limit)
    await settle()
    assert sorted(events.started) == [1, 2] and inflight.limit.in_flight == min(limits)
    events.decided(2)  # 2 still writes its records, but its model work is over
    await settle()
    assert sorted(events.started) == [1, 2, 3]


async def test_intake_stops_at_twice_the_worker_limit_of_events_not_ended() -> None:
    inflight, events, limit = Inflight(2), Events(), Limit(2)
    for offset in (1, 2, 3, 4):
        await start(inflight, events, TP0, offset, offset, limit)  # 3 and 4 wait for a slot
    fifth = asyncio.create_task(start(inflight, events, TP0, 5, 5, limit))
    events.decided(1, 2)
    await settle()
    assert not fifth.done()  # backpressure: the stream waits here while 1 and 2 write
    assert sorted(events.started) == [1, 2, 3, 4]
    events.finish(1)
    await settle()
    assert fifth.done()


async def test_an_event_waiting_for_its_key_holds_no_slot() -> None:
    inflight, events, limit = Inflight(2), Events(), Limit(2)
    await start(inflight, events, TP0, 1, "k1", limit)
    await start(inflight, events, TP0, 2, "k1", limit)  # waits for 1, its key's earlier event
    await start(inflight, events, TP0, 3, "k2", limit)
    await settle()
    assert events.started == [1, 3]


async def test_revocation_waits_for_the_grace_then_cancels_without_acking() -> None:
    inflight, events, limit = Inflight(10), Events(), Limit(10)
    for offset in (1, 2, 3):
        await start(inflight, events, TP0, offset, offset, limit)
    await start(inflight, events, TP1, 7, 7, limit)
    await settle()
    revoking = asyncio.create_task(inflight.revoke([TP0], grace_s=0.2))
    await settle()
    events.finish(1)  # ends within the grace period: acked
    assert await revoking == 2  # 2 and 3 did not end in time
    assert events.acked == [(TP0, 1)]
    assert inflight.limit.in_flight == 1 and limit.in_flight == 1  # TP1's event holds the only slot
    events.finish(2, 3, 7)
    await settle()
    assert events.acked == [(TP0, 1), (TP1, 7)]


async def test_after_draining_nothing_starts() -> None:
    inflight, events, limit = Inflight(10), Events(), Limit(10)
    await start(inflight, events, TP0, 1, 1, limit)
    events.finish(1)
    assert await inflight.drain(grace_s=1) == 0
    await start(inflight, events, TP0, 2, 2, limit)
    await settle()
    assert events.started == [1] and events.acked == [(TP0, 1)]
