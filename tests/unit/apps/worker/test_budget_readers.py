"""The budget owner and the budget client over consumer stand-ins: requests, ledger snapshots and
decisions Keel did not write are counted and passed over, the next good one is answered, and the
client's reader ending with an error ends the worker (exit 70)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from fakes import FakeClock
from hostile_records import budget_reservation, hostile, hostile_budget_requests
from kafka_stand_in import Record, StandInConsumer

from streams.apps import faust_app
from streams.apps.worker import budget_owner
from streams.apps.worker.budget_client import BudgetClient
from streams.apps.worker.budget_owner import BudgetOwner
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import BUDGET_DECISIONS, BUDGET_REQUESTS, budget_ledger_topic
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.settings import Settings
from streams.cost.budget import Amount, BudgetLimits, BudgetRequest, Decision, Ledger, Limits
from streams.cost.budget_records import BudgetCodec, encode_ledger
from streams.cost.pricing import Pricing
from streams.kafka.skipped import SkippedRecords

SETTINGS = Settings(namespace="t1", partitions=2)
REQUESTS = TopicPartition(SETTINGS.topic(BUDGET_REQUESTS), 0)
LEDGERS = budget_ledger_topic(SETTINGS)
NOW = FakeClock().now_ms()
LIMITS = BudgetLimits(Limits(usd=1.0))


class Producer:
    """Takes what is written; like aiokafka's, it refuses a partition the topic does not have."""

    def __init__(self) -> None:
        self.written: list[OutRecord] = []
        self.sent = asyncio.Event()

    async def send_all(self, records: list[OutRecord]) -> list[tuple[str, int, int]]:
        for r in records:
            assert r.partition is None or 0 <= r.partition < SETTINGS.partitions, r
        self.written += records
        self.sent.set()
        return [(r.topic, r.partition or 0, 0) for r in records]


def reserve(request_id: str) -> BudgetRequest:
    return budget_reservation(request_id, at_ms=NOW)


def ledger_records() -> list[Record]:
    """The ledger topic's partition 0: snapshots another version (or anyone) wrote, then a good one."""
    good = Ledger(spent={"day:2027-01-15": Amount(0.5, 10)})
    values: list[tuple[bytes | None, bytes | None]] = [
        (b"agent:gone", None),  # a tombstone: nothing to load, nothing to count
        (b"\xff\xfe", encode_ledger(good)),
        (b"agent:a", b"not json"),
        (b"agent:b", b"[1, 2]"),
        (
            b"agent:c",
            orjson.dumps(
                {"spent": {"day:2027-01-15": [None, 1]}, "holds": {}, "raised": {}, "alerted": {}, "applied": 1}
            ),
        ),
        (
            b"agent:d",
            orjson.dumps({"spent": {"week:7": [1, 1]}, "holds": {}, "raised": {}, "alerted": {}, "applied": 1}),
        ),
        (b"agent:support_triage", encode_ledger(good)),
    ]
    return [Record(LEDGERS, 0, offset, key, value) for offset, (key, value) in enumerate(values)]


@pytest.fixture
def ledgers(monkeypatch: pytest.MonkeyPatch) -> None:
    async def read_to_end(_bootstrap: str, tps: list[TopicPartition]) -> AsyncIterator[Any]:
        for record in ledger_records():
            if TopicPartition(record.topic, record.partition) in tps:
                yield record

    monkeypatch.setattr(budget_owner, "read_to_end", read_to_end)


@pytest.mark.usefixtures("ledgers")
async def test_the_owner_passes_over_what_it_cannot_read_and_answers_the_next_request(catalogue: Catalogue) -> None:
    consumer, producer, skipped = StandInConsumer(partitions=2), Producer(), SkippedRecords()
    owner = BudgetOwner(SETTINGS, catalogue, producer, clock=FakeClock(), skipped=skipped)  # type: ignore[arg-type]
    running = asyncio.create_task(owner.run(consumer=consumer))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            await consumer.idle()
            await consumer.listener.on_partitions_assigned([REQUESTS])
            bad = hostile_budget_requests(catalogue, now_ms=NOW, partitions=SETTINGS.partitions)
            consumer.write_all(REQUESTS, bad)
            consumer.fail(KafkaConnectionError())
            consumer.write(REQUESTS, BudgetCodec(catalogue).encode_request(reserve("good"), reply_partition=1))
            while consumer.committed(REQUESTS) != len(consumer.logs[REQUESTS]):
                await consumer.idle()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert running.cancelled(), running
    answers = [r for r in producer.written if r.topic == SETTINGS.topic(BUDGET_DECISIONS)]
    decisions = [BudgetCodec(catalogue).decode_decision(r.value) for r in answers]
    harmless = sum(h.reason is None for h in bad)  # a huge key, headers with no value: requests like any other
    assert [(d.request_id, d.granted) for d in decisions] == [("x", True)] * harmless + [("good", True)]
    assert answers[-1].partition == 1  # the partition the good request's sender reads
    for reason in {h.reason for h in bad if h.reason is not None}:
        assert skipped.count(budget_owner.READER, REQUESTS.topic, reason) == sum(h.reason == reason for h in bad), (
            reason
        )
    assert skipped.count(budget_owner.READER, LEDGERS, "unexpected_value") == 5
    # the good snapshot was loaded: its 0.50 spent, and the holds of "x" and "good"
    assert [(scope, kind, left) for scope, kind, _, left in owner.remaining()] == [
        ("agent:support_triage", "day", pytest.approx(1.0 - 0.5 - 0.02))
    ]


@pytest.mark.usefixtures("ledgers")
async def test_requests_fetched_while_the_ledgers_load_are_applied_once_they_have(catalogue: Catalogue) -> None:
    # aiokafka hands out a new assignment's records before its listener has loaded the ledgers
    consumer, producer = StandInConsumer(partitions=2), Producer()
    owner = BudgetOwner(SETTINGS, catalogue, producer, clock=FakeClock())  # type: ignore[arg-type]
    consumer.write(REQUESTS, BudgetCodec(catalogue).encode_request(reserve("early"), reply_partition=1))
    running = asyncio.create_task(owner.run(consumer=consumer))  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(10):
            while consumer.fetches < 3:  # fetched, and fetched again, before the assignment is loaded
                await asyncio.sleep(0)
            await consumer.listener.on_partitions_assigned({REQUESTS, TopicPartition(REQUESTS.topic, 1)})
            while consumer.committed(REQUESTS) != 1:
                await consumer.idle()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    answers = [
        BudgetCodec(catalogue).decode_decision(r.value) for r in producer.written if r.topic.endswith("decisions")
    ]
    assert [a.request_id for a in answers] == ["early"]


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BaseException]]:
    calls: list[BaseException] = []
    monkeypatch.setattr(faust_app, "exit_for_restart", lambda _what, exc: calls.append(exc))
    yield calls


def client_on(catalogue: Catalogue, consumer: StandInConsumer, producer: Any, pricing: Pricing) -> BudgetClient:
    client = BudgetClient(
        SETTINGS,
        catalogue,
        producer,
        budgets=SimpleNamespace(),  # type: ignore[arg-type]  # not asked: only ``ask`` runs
        pricing=pricing,
        clock=FakeClock(),
        skipped=SkippedRecords(),
    )
    client._consumer = lambda: consumer  # type: ignore[method-assign]
    return client


async def test_the_client_passes_over_decisions_it_cannot_read_and_takes_its_answer(
    catalogue: Catalogue, pricing: Pricing
) -> None:
    consumer = StandInConsumer()
    codec = BudgetCodec(catalogue)
    good = wire.decode(catalogue, codec.encode_decision(Decision("other", "agent:triage", True)))
    bad = hostile(catalogue, "keel.budget-decisions-value", good, timestamp=None, text="scope")

    class Owner(Producer):
        async def send_all(self, records: list[OutRecord]) -> list[tuple[str, int, int]]:
            (tp,) = consumer.assignment()
            request, _ = codec.decode_request(records[0].value)
            consumer.write_all(tp, bad)
            consumer.fail(KafkaConnectionError())
            consumer.write(tp, codec.encode_decision(Decision(request.request_id, request.scope, True)))
            return await super().send_all(records)

    client = client_on(catalogue, consumer, Owner(), pricing)
    try:
        async with asyncio.timeout(10):
            decision = await client.ask(reserve("mine"))
    finally:
        await client.stop()
    assert (decision.request_id, decision.granted) == ("mine", True)
    (tp,) = consumer.assignment()
    for reason in {h.reason for h in bad if h.reason is not None}:
        expected = sum(h.reason == reason for h in bad)
        assert client._skipped.count("budget-client", tp.topic, reason) == expected, reason


async def test_the_client_reader_ending_with_an_error_ends_the_worker(
    catalogue: Catalogue, pricing: Pricing, exits: list[BaseException]
) -> None:
    consumer = StandInConsumer()
    consumer.fail(TopicAuthorizationFailedError())
    producer = Producer()
    client = client_on(catalogue, consumer, producer, pricing)
    asking = asyncio.create_task(client.ask(reserve("mine")))
    try:
        async with asyncio.timeout(10):
            while not exits:
                await asyncio.sleep(0.01)
    finally:
        asking.cancel()
        await asyncio.gather(asking, return_exceptions=True)
    assert [type(e) for e in exits] == [TopicAuthorizationFailedError]
