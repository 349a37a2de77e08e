"""Retry tiers on the real broker: a provider outage that outlasts the in-line retries is retried from a
tier topic, without holding the input partition, and ends in a dead letter after the last tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer
from harness import Stack, assert_exactly_one_outcome_and_audit, model_calls, only_outcome, run_through, worker_stack

from streams.cli.local_stack import simulator_process
from streams.contracts.out_record import OutRecord
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer

TIERS_S = [2, 4]


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with simulator_process(tmp_path_factory.mktemp("sim"), "--seed", "3") as url:
        yield url


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with worker_stack(
        kafka_bootstrap,
        tmp_path_factory.mktemp("keel-state"),
        provider="sim",
        base_url=sim_url,
        reliability={"retry_delays_s": TIERS_S},
        env={"KEEL_CIRCUIT_FAILURE_THRESHOLD": "1000"},  # the outage is per prompt, not per model
    ) as stack:
        yield stack


async def test_an_outage_is_outlasted_in_a_tier_while_the_partition_goes_on(stack: Stack, make_event) -> None:
    # support_triage makes 3 calls per pass: the outage covers the first pass, the tier's pass answers
    waiting = make_event(business_key="CUST-7", payload={"ticket_id": "T-1", "body": "Hi [[sim:outage=3]]"})
    behind = make_event(business_key="CUST-7", payload={"ticket_id": "T-2", "body": "Where is my order?"})
    ids, tally = await run_through(stack, events={"support.tickets": [waiting, behind]})
    assert_exactly_one_outcome_and_audit(ids, tally)
    first, second = only_outcome(tally, waiting.event_id), only_outcome(tally, behind.event_id)
    assert first.kind == second.kind == "result"
    # same key, so same input partition: the later event did not wait for the earlier one's tier
    assert second.timestamp_ms < first.timestamp_ms
    assert first.timestamp_ms - second.timestamp_ms >= TIERS_S[0] * 1000 * 0.9
    usage = sorted((u.value for u in tally.by_kind["usage"][waiting.event_id]), key=lambda u: u["attempt"])
    assert [(u["purpose"], u["outcome"]) for u in usage] == [
        ("initial", "provider_5xx"),
        ("retry", "provider_5xx"),
        ("retry", "provider_5xx"),
        ("tier_retry", "ok"),
    ]
    [audit] = tally.by_kind["audit"][waiting.event_id]
    assert [a["purpose"] for a in audit.value["attempt_log"]] == [u["purpose"] for u in usage]
    assert audit.value["input_topic"] == stack.topic("support.tickets")  # where it first arrived


async def test_after_the_last_tier_the_event_is_a_dead_letter_with_its_first_arrival(stack: Stack, make_event) -> None:
    event = make_event(payload={"ticket_id": "T-3", "body": "Still down [[sim:5xx]]"})
    ids, tally = await run_through(stack, events={"support.tickets": [event]})
    assert_exactly_one_outcome_and_audit(ids, tally)
    dead = only_outcome(tally, event.event_id)
    assert dead.kind == "dead_letter" and dead.value["reason"] == "provider_5xx"
    assert dead.value["attempts"] == 9  # three passes of three calls
    assert len(tally.by_kind["usage"][event.event_id]) == 9
    assert dead.value["original"]["topic"] == stack.topic("support.tickets")
    headers = dict(dead.headers)
    assert headers["keel.dlq.retry.tier"] == b"2"
    assert headers["keel.dlq.original.topic"] == stack.topic("support.tickets").encode()
    assert "keel.retry.tier" not in {h["key"] for h in dead.value["original"]["headers"]}


async def test_a_tier_record_delivered_again_costs_no_model_call(stack: Stack, sim_url: str, make_event) -> None:
    event = make_event(payload={"ticket_id": "T-4", "body": "Flaky [[sim:outage=3]]"})
    ids, first = await run_through(stack, events={"support.tickets": [event]})
    assert only_outcome(first, event.event_id).kind == "result"
    calls = model_calls(sim_url)
    tier_records = await read_all(stack, stack.topic("support_triage.retry.1"), event.event_id)
    assert len(tier_records) == 1

    async def deliver_again() -> None:
        async with RecordProducer(client_config(stack.settings)) as producer:
            await producer.send_all(tier_records)

    _, second = await run_through(stack, events={"support.tickets": [event]}, action=deliver_again, expect=ids)
    assert model_calls(sim_url) == calls  # the input and the tier record again: both answered from the store
    outcomes = second.outcomes(event.event_id)
    assert {o.kind for o in outcomes} == {"result"} and {o.value["output"]["summary"] for o in outcomes} == {
        only_outcome(first, event.event_id).value["output"]["summary"]
    }


async def read_all(stack: Stack, topic: str, event_id: str) -> list[OutRecord]:
    """Every record of ``topic`` whose value carries ``event_id``, as it could be produced again."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=stack.settings.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[OutRecord] = []
        for _ in range(10):  # until a poll finds nothing more
            batches = (await consumer.getmany(timeout_ms=1000)).values()
            if found and not any(batches):
                break
            found += [
                OutRecord(m.topic, m.key, m.value, tuple(m.headers), m.partition)
                for batch in batches
                for m in batch
                if event_id.encode() in m.value
            ]
        return found
    finally:
        await consumer.stop()
