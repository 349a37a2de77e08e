"""Records a producer may write to an input topic, whatever their headers: the worker keeps running,
each ends in exactly one outcome, and a restart finds nothing to crash on."""

from __future__ import annotations

import dataclasses

import pytest
from harness import Stack, assert_exactly_one_outcome_and_audit, model_calls, only_outcome, run_through
from hostile_records import NOT_UTF8, send_raw_batch

from streams.contracts.out_record import OutRecord
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer
from streams.pipeline.decode import encode_request

pytestmark = pytest.mark.integration


HOSTILE_HEADERS = [
    (("keel.review.rerun_of", b"\xff\xfe"), ("keel.review.pass", b"2")),  # not UTF-8
    (("keel.review.rerun_of", b"x"), ("keel.review.pass", b"9" * 5000)),  # int() refuses 4,300+ digits
    (("keel.review.skip_model", b"\xff"), ("keel.review.pass", b"1"), ("keel.review.rerun_of", b"y")),
    (("keel.replay", b"1"), ("keel.replay.pass", b"7")),  # an unsigned replay: no second decision
    (("keel.retry.attempts", b"[{]"), ("keel.park.until", b"-1"), ("keel.event_id", b"\x00")),
]


async def test_hostile_headers_and_reused_ids_end_once_and_the_worker_keeps_running(
    stack: Stack, sim_url: str, make_event
) -> None:
    topic = stack.topic("support.tickets")
    plain = [make_event() for _ in HOSTILE_HEADERS]
    forged, reused = make_event(), make_event()
    with stack.running_worker():
        ids, first = await run_through(stack, events={"support.tickets": [reused]})
        calls = model_calls(sim_url)

        def record(event, headers) -> OutRecord:
            return OutRecord(topic, event.business_key.encode(), encode_request(stack.catalogue, event), headers)

        conflicting = dataclasses.replace(reused, payload_json='{"ticket_id": "T-2", "body": "another input"}')
        records = [
            *(record(event, headers) for event, headers in zip(plain, HOSTILE_HEADERS, strict=True)),
            record(forged, (("keel.replay.pass", b"1"), ("keel.control.sig", b"v1.local." + b"0" * 64))),
            record(conflicting, ()),
            record(reused, (("keel.replay", b"1"), ("keel.replay.pass", b"2"))),  # unsigned: re-emitted, not paid
            OutRecord(
                topic,
                b"k" * 1000,
                b"\x00\x00\x00\x03\xe7" + b"v" * 200_000,
                tuple((f"h{i}", b"x" * 4000) for i in range(150)),
            ),
        ]

        async def send() -> list[str]:
            async with RecordProducer(client_config(stack.settings)) as producer:
                positions = await producer.send_all(records)
            return [f"undecodable:{t}/{p}/{o}" for t, p, o in (positions[-4], positions[-3], positions[-1])]

        expect = [e.event_id for e in plain]
        seen, tally = await run_through(stack, action=send, expect=expect)
        refused = seen[len(expect) :]
        stack.check_worker()

    assert_exactly_one_outcome_and_audit(seen, tally)
    assert [only_outcome(tally, i).kind for i in expect] == ["result"] * len(expect)
    assert model_calls(sim_url) == calls + len(plain)  # the unsigned replay of `reused` cost nothing
    reasons = [only_outcome(tally, i).value["reason"] for i in refused]
    assert reasons == ["control_header_forged", "event_id_conflict", "unknown_schema_id"]
    conflict = only_outcome(tally, refused[1]).value
    assert reused.event_id in conflict["message"] and conflict["original"]["value"] == records[-3].value
    assert only_outcome(first, ids[0]).kind == "result"
    large = only_outcome(tally, refused[2]).value
    assert large["original_truncated"] is True and records[-1].value.startswith(large["original"]["value"])

    with stack.running_worker():  # a restart reads the same topics and stores: nothing to crash on
        fresh = [make_event()]
        fresh_ids, after = await run_through(stack, events={"support.tickets": fresh})
    assert only_outcome(after, fresh_ids[0]).kind == "result"


async def test_a_header_name_that_is_not_utf8_stops_nothing_and_its_batch_ends_once(stack: Stack, make_event) -> None:
    """aiokafka refused every fetch of such a batch: the worker crash-looped and the batch's good events
    never arrived (streams/kafka/kafka_records.py). Now each ends once; the name reads with U+FFFD for its bytes."""
    events = [make_event() for _ in range(3)]
    values = [encode_request(stack.catalogue, e) for e in events]
    hostile = ((NOT_UTF8 + b".name", b"kept"),)
    garbage = b"not an event"
    with stack.running_worker():

        async def send() -> list[str]:
            batch = [(b"k", values[0], ()), (b"k", values[1], hostile), (b"k", garbage, hostile), (b"k", values[2], ())]
            first = await send_raw_batch(client_config(stack.settings), stack.topic("support.tickets"), 0, batch)
            return [f"undecodable:{stack.topic('support.tickets')}/0/{first + 2}"]

        expect = [e.event_id for e in events]
        seen, tally = await run_through(stack, action=send, expect=expect)
        stack.check_worker()
    assert_exactly_one_outcome_and_audit(seen, tally)
    assert [only_outcome(tally, i).kind for i in expect] == ["result"] * 3
    dead = only_outcome(tally, seen[-1]).value
    assert dead["reason"] == "wrong_magic_byte" and dead["original"]["value"] == garbage
    names = {h["key"]: h["value"] for h in dead["original"]["headers"]}
    assert names["\ufffd" * len(NOT_UTF8) + ".name"] == b"kept"
