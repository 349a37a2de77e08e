"""The worker on the real broker with the provider simulator: every event ends in exactly one outcome."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from harness import (
    Stack,
    assert_exactly_one_outcome_and_audit,
    committed_offsets,
    only_outcome,
    run_through,
    worker_stack,
)

from streams.cli.local_stack import simulator_process
from streams.cli.publish import load_samples, take


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("keel-state")
    with (
        simulator_process(state_dir, "--seed", "11") as sim_url,
        # failures injected by one test must not open the circuit for the next (test_circuits.py covers it)
        worker_stack(
            kafka_bootstrap,
            state_dir,
            provider="sim",
            base_url=sim_url,
            # an auth failure opens the circuit whatever the threshold: a cooldown this short closes it again
            env={"KEEL_CIRCUIT_FAILURE_THRESHOLD": "1000", "KEEL_CIRCUIT_COOLDOWN_S": "0.01"},
        ) as stack,
    ):
        yield stack


async def test_sample_events_of_both_agents_each_end_in_one_outcome(stack: Stack, samples_dir: Path) -> None:
    batches = {
        "support_triage": take(load_samples(samples_dir / "support_triage.jsonl"), 60),
        "invoice_extraction": take(load_samples(samples_dir / "invoice_extraction.jsonl"), 60),
    }
    ids, tally = await run_through(
        stack, events={"support.tickets": batches["support_triage"], "finance.invoices": batches["invoice_extraction"]}
    )
    assert_exactly_one_outcome_and_audit(ids, tally)
    assert tally.summary(ids) == {
        "events": 120,
        "results": 120,
        "review": 0,
        "dead_letters": 0,
        "parked": 0,
        "missing": 0,
        "audit": 120,
        "usage": 120,
    }
    for agent, batch in batches.items():
        result_schema = stack.catalogue.by_subject(f"{agent}.results-value")
        output_fields = {f["name"] for f in result_schema.raw["fields"] if f["name"] == "output"}
        assert output_fields == {"output"}
        for event in batch:
            result = only_outcome(tally, event.event_id)
            assert result.kind == "result" and result.schema_id == result_schema.id
            assert result.value["agent"] == agent and result.value["business_key"] == event.business_key
            assert dict(result.headers)["keel.event_id"] == event.event_id.encode()
            [usage] = tally.by_kind["usage"][event.event_id]
            assert usage.value["provider"] == "sim" and usage.value["outcome"] == "ok"
            [audit] = tally.by_kind["audit"][event.event_id]
            assert audit.value["input_payload"] == event.payload_json and audit.value["outcome"] == "result"


async def test_bad_input_becomes_dead_letters_and_later_events_still_succeed(
    stack: Stack, make_event, request_bytes
) -> None:
    good_value = request_bytes()
    bad = {
        "not Avro at all": (b"plain text, not avro", "decode", "wrong_magic_byte"),
        "wrong magic byte": (b"\x01" + good_value[1:], "decode", "wrong_magic_byte"),
        "unknown schema id": (struct.pack(">bI", 0, 4242) + good_value[5:], "decode", "unknown_schema_id"),
        "missing required fields": (
            request_bytes(event_id="", tenant=""),
            "decode",
            "missing_required_field",
        ),
        "oversized payload": (
            request_bytes(payload_json=orjson.dumps({"body": "x" * 300_000}).decode()),
            "decode",
            "event_too_large",
        ),
        "invalid UTF-8": (
            request_bytes(tenant="acme-zz").replace(b"acme-zz", b"acme\xc3\x28z"),
            "decode",
            "invalid_utf8",
        ),
        "truncated Avro": (good_value[:-3], "decode", "malformed_avro"),
    }
    raw = [(b"bad-key", value) for value, _, _ in bad.values()]
    ids, tally = await run_through(stack, raw=raw)
    assert_exactly_one_outcome_and_audit(ids, tally)
    for event_id, (name, (value, stage, reason)) in zip(ids, bad.items(), strict=True):
        dead = only_outcome(tally, event_id)
        assert dead.kind == "dead_letter", name
        assert (dead.value["stage"], dead.value["reason"]) == (stage, reason), name
        assert dead.value["original"]["value"] == value and dead.value["original"]["key"] == b"bad-key", name
        headers = dict(dead.headers)
        assert headers["keel.dlq.error.reason"] == reason.encode()
        assert headers["keel.dlq.original.topic"] == stack.topic("support.tickets").encode()
        assert int(headers["keel.dlq.original.offset"]) == int(event_id.rsplit("/", 1)[1])
        assert dead.value["message"], name
    # the worker kept going: good events after the poison still become results
    later = [make_event() for _ in range(3)]
    ids, tally = await run_through(stack, events={"support.tickets": later})
    assert [only_outcome(tally, i).kind for i in ids] == ["result"] * 3


@pytest.mark.parametrize(
    ("marker", "stage", "reason", "purposes"),
    [
        ("[[sim:malformed]]", "parse", "output_not_json", ["initial", "reask"]),
        ("[[sim:truncated]]", "parse", "output_truncated", ["initial", "reask"]),
        ("[[sim:schema_violation]]", "validate", "output_schema_violation", ["initial", "reask"]),
        ("[[sim:5xx]]", "model", "provider_5xx", ["initial", "retry", "retry"]),
        ("[[sim:auth]]", "model", "provider_auth", ["initial"]),
        ("[[sim:429]]", "model", "provider_rate_limited", ["initial", "retry", "retry"]),
        ("[[sim:context_length]]", "model", "context_length_exceeded", ["initial"]),
        ("[[sim:refusal]]", "model", "model_refused", ["initial"]),
    ],
)
async def test_model_failures_become_dead_letters_with_a_reason(
    stack: Stack, make_event, marker: str, stage: str, reason: str, purposes: list[str]
) -> None:
    ticket = {"ticket_id": "T-5", "subject": "Broken", "body": f"The export fails. {marker}"}
    event = make_event(payload=ticket)
    ids, tally = await run_through(stack, events={"support.tickets": [event]})
    assert_exactly_one_outcome_and_audit(ids, tally)
    dead = only_outcome(tally, event.event_id)
    assert dead.kind == "dead_letter"
    assert (dead.value["stage"], dead.value["reason"], dead.value["attempts"]) == (stage, reason, len(purposes))
    assert dead.value["event_id"] == event.event_id  # decodable events keep their own id
    usage = sorted((u.value for u in tally.by_kind["usage"][event.event_id]), key=lambda u: u["attempt"])
    assert [(u["purpose"], u["outcome"]) for u in usage] == [(p, reason) for p in purposes]
    [audit] = tally.by_kind["audit"][event.event_id]
    assert audit.value["error"]["reason"] == reason and audit.value["prompt_hash"]
    assert [a["purpose"] for a in audit.value["attempt_log"]] == purposes


async def test_offsets_are_committed_once_outcomes_are_written(stack: Stack, make_event) -> None:
    ids, tally = await run_through(stack, events={"support.tickets": [make_event() for _ in range(8)]})
    assert_exactly_one_outcome_and_audit(ids, tally)
    committed, ends = await committed_offsets(stack, "support.tickets")
    assert committed == ends
