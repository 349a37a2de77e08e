"""How a worker reads its agents' topics (input, retry tiers, parking): Keel's own consumer, in batches.

The worker is a faust app (its web pages, tasks, signals and crash handling), but it does not read
through faust agents. faust hands a stream one message at a time: its fetcher awaits ``wait_first``
(four tasks and an ``asyncio.wait``) per message, then its conductor and the stream's loop pass the
message on. In `make bench` that cost about 150 µs of CPU per event, more than deciding and writing
the event. And faust's own gap handling can commit past an event still in flight, so the order of
acks was already Keel's (streams/kafka/inflight.py). Here one aiokafka consumer in the worker's group
(``app_id``) fetches batches, and each partition's records go, in offset order, to a feeder of its
own, which hands them one by one to the in-flight tracker:

* **waits stay with their partition**: a retry tier's record waits until it is due, and a parked
  event until its budget has room, in its partition's feeder; other partitions go on;
* **bounded**: a feeder still busy with an earlier batch (a record waiting, or the in-flight limit
  reached) gets its partition paused until it has handed everything on, so at most two fetches'
  records wait per partition. A paused partition keeps its position; aiokafka drops what it had
  fetched beyond it and fetches it again on resume;
* **commits** go out every ``commit_interval_s``: each partition up to the event before its lowest
  unfinished one (the tracker acks in offset order only), and, on revocation, once the partition's
  in-flight work has ended or been abandoned;
* **revocation**: a revoked partition's feeder stops, its in-flight work gets the grace period to end
  (``Inflight.revoke``), what ended is committed, then the partition goes. Nothing it ran after that
  produces outcomes, and its next owner starts after the last committed event;
* **errors**: a transient Kafka error is read through (with backoff); any other one ends the worker
  (exit 70, streams/apps/worker/shell.py), never the intake alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, IllegalStateError, KafkaError

from streams.contracts.topics import intake_group
from streams.core.settings import Settings
from streams.kafka.consumers import group_consumer, until_read
from streams.kafka.inflight import Inflight

log = logging.getLogger(__name__)

Ack = Callable[[], None]
# hands one record to the in-flight tracker (after any wait the record needs) and returns once it is taken
Deliver = Callable[[Any, Ack], Awaitable[None]]
# what the process does when handing a partition's records on failed (a bug): the worker exits for a restart
Fatal = Callable[[str, BaseException], None]


class Intake(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's abstract base is untyped
    """Every record of ``routes``' topics (by topic: what to do with a record), for one worker.

    ``assigned`` hears each new assignment (the whole of it); ``revoked`` hears revoked partitions
    after their in-flight work has ended or been abandoned, before their offsets are committed.
    ``fatal`` hears a failure to hand a partition's records on (the worker's ``exit_for_restart``).
    ``consumer``: one to use instead of the worker group's own (tests)."""

    def __init__(
        self,
        settings: Settings,
        routes: Mapping[str, Deliver],
        inflight: Inflight,
        *,
        assigned: Callable[[set[TopicPartition]], None],
        revoked: Callable[[set[TopicPartition]], Awaitable[None]],
        fatal: Fatal,
        consumer: Any = None,
    ) -> None:
        self._settings = settings
        self._routes = dict(routes)
        self._inflight = inflight
        self._assigned = assigned
        self._revoked = revoked
        self._fatal = fatal
        self._feeders: dict[TopicPartition, _Feeder] = {}
        self._acked: dict[TopicPartition, int] = {}  # the next offset to read, past every ended event
        self._committed: dict[TopicPartition, int] = {}  # the group's offset: committed, or read from
        self._consumer: Any = consumer

    async def run(self) -> None:
        """Read until stopped (``stop``)."""
        settings = self._settings
        consumer = self._consumer = self._consumer or group_consumer(
            settings, intake_group(settings), fetch_max_wait_ms=settings.fetch_max_wait_ms
        )  # built here: aiokafka binds a consumer to the running loop
        consumer.subscribe(list(self._routes), listener=self)
        await consumer.start()
        loop = asyncio.get_running_loop()
        interval_s = settings.commit_interval_s
        next_commit = loop.time() + interval_s
        try:
            while True:
                batch = await until_read(
                    lambda: consumer.getmany(timeout_ms=int(min(interval_s, 0.5) * 1000)), what="the agents' topics"
                )
                for tp, records in batch.items():
                    self._feed(tp, records)
                if loop.time() >= next_commit:
                    next_commit = loop.time() + interval_s
                    await self._commit(set(self._acked))
        except ConsumerStoppedError:
            return  # stopped by ``stop``

    async def stop(self) -> None:
        """After the in-flight work is drained: commit what ended, and leave the group."""
        await self._stop_feeders(set(self._feeders))
        if self._consumer is not None:
            await self._commit(set(self._acked))
            await self._consumer.stop()

    def lag(self) -> list[tuple[str, int, int]]:
        """Per partition this worker reads: its end offset minus the group's offset."""
        consumer = self._consumer
        if consumer is None:
            return []
        lag = []
        for tp, committed in list(self._committed.items()):
            end = consumer.highwater(tp)
            if end is not None:
                lag.append((tp.topic, tp.partition, max(0, end - committed)))
        return lag

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        described = ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(assigned))
        log.info("reading %d partitions: %s", len(assigned), described or "none")
        self._assigned(assigned)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        revoked = set(revoked)
        await self._stop_feeders(revoked)
        abandoned = await self._inflight.revoke(revoked, grace_s=self._settings.revoke_grace_s)
        if abandoned:
            log.warning("rebalance: %d in-flight events did not end in time; their next owner runs them", abandoned)
        await self._revoked(revoked)
        await self._commit(revoked & set(self._acked))  # so the next owner does not run them again
        for tp in revoked:
            self._acked.pop(tp, None)
            self._committed.pop(tp, None)

    def _feed(self, tp: TopicPartition, records: list[Any]) -> None:
        feeder = self._feeders.get(tp)
        if feeder is None:
            feeder = self._feeders[tp] = _Feeder(tp, self._routes[tp.topic], self._acked, self._consumer, self._fatal)
            self._committed.setdefault(tp, records[0].offset)  # assigned just now: read from the group's offset
        feeder.take(records)

    async def _stop_feeders(self, tps: set[TopicPartition]) -> None:
        feeders = [self._feeders.pop(tp) for tp in tps if tp in self._feeders]
        for feeder in feeders:
            await feeder.stop()

    async def _commit(self, tps: set[TopicPartition]) -> None:
        offsets = {tp: self._acked[tp] for tp in tps if self._acked[tp] != self._committed.get(tp)}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (KafkaError, IllegalStateError) as exc:  # moved meanwhile: the next owner reads them again
            log.info("committing offsets was refused (%r); those events are delivered again", exc)
            return
        self._committed.update(offsets)


class _Feeder:
    """One partition's records, handed on in offset order by a task of its own while there are any."""

    def __init__(
        self, tp: TopicPartition, deliver: Deliver, acked: dict[TopicPartition, int], consumer: Any, fatal: Fatal
    ) -> None:
        self._tp = tp
        self._fatal = fatal
        self._deliver = deliver
        self._acked = acked
        self._consumer = consumer
        self._backlog: deque[Any] = deque()
        self._task: asyncio.Task[None] | None = None
        self._paused = False

    def take(self, records: list[Any]) -> None:
        if self._backlog:  # still busy with the last batch: no more until this one is handed on
            self._consumer.pause(self._tp)
            self._paused = True
        self._backlog.extend(records)
        if self._task is None:
            self._task = asyncio.create_task(self._hand_on())

    async def stop(self) -> None:
        self._backlog.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _hand_on(self) -> None:
        tp, backlog, acked = self._tp, self._backlog, self._acked
        try:
            while backlog:
                record = backlog.popleft()
                await self._deliver(record, functools.partial(acked.__setitem__, tp, record.offset + 1))
        except Exception as exc:  # a bug: the partition would stop for good
            self._fatal(f"handing on {tp.topic}/{tp.partition}'s records failed", exc)
        self._task = None
        if self._paused:
            self._paused = False
            self._consumer.resume(tp)
