import orjson
import pytest
from review_samples import TRIAGE_OUTPUT, decision_with, review_item

from streams.agent.definition import Agent
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError, UnexpectedSchema
from streams.review.records import decision_record, decode_decision, decode_item, encode_decision


def test_a_v2_item_written_by_the_worker_reads_back_whole(catalogue: Catalogue, agents: dict[str, Agent]) -> None:
    item = review_item(catalogue, agents["support_triage"], route="flag", created_at_ms=1_800_000_000_123)
    assert (item.agent, item.route, item.rule, item.reason) == (
        "support_triage",
        "flag",
        "low_priority",
        "handoff_rule",
    )
    assert item.created_at_ms == 1_800_000_000_123 and item.occurred_at_ms == 1_800_000_000_000
    assert orjson.loads(item.output_json or "") == TRIAGE_OUTPUT
    assert item.prompt == (("system", "s"), ("user", "u")) and item.attempts[0].model_version == "sim-1"
    assert (item.input_topic, item.input_partition, item.input_offset) == ("t1.support.tickets", 1, 11)
    assert item.input_key == b"T-9" and item.input_value[:1] == b"\x00"
    assert (item.output_model, item.output_model_version, item.trace_id) == ("sim/m", "sim-1", "tr-9")


def test_a_v1_item_reads_as_route_review_with_no_original(catalogue: Catalogue) -> None:
    v1 = catalogue.by_id(5)
    assert v1 is not None
    value = {
        "event_id": "e1",
        "agent": "support_triage",
        "agent_version": "1",
        "config_version": "c",
        "tenant": "t",
        "business_key": "k",
        "occurred_at": 1,
        "created_at": 2,
        "reason": "model_refused",
        "message": "m",
        "request_payload": "{}",
        "prompt": [],
        "attempts": [],
        "output": None,
        "trace_id": None,
    }
    item = decode_item(catalogue, wire.encode(v1, value))
    assert (item.route, item.rule, item.input_value, item.input_key, item.warnings) == ("review", None, b"", None, ())
    assert (item.input_topic, item.input_partition, item.input_offset, item.output_model) == ("", -1, -1, None)


def test_decisions_round_trip_keyed_by_item(catalogue: Catalogue) -> None:
    decision = decision_with(
        config_version="c", route="flag", action="edit", decided_at_ms=1_800_000_000_000, output_json='{"a":1}'
    )
    assert decode_decision(catalogue, encode_decision(catalogue, decision)) == decision
    record = decision_record(catalogue, "t1.keel.review.decisions", decision)
    assert record.key == b"e1" and record.partition is None and wire.read_header(record.value) == 11


def test_a_decision_is_not_an_item_and_garbage_is_neither(catalogue: Catalogue) -> None:
    decision = decision_with(config_version="c", action="reject", reason="wrong")
    with pytest.raises(UnexpectedSchema):
        decode_item(catalogue, encode_decision(catalogue, decision))
    with pytest.raises(DecodeError):
        decode_decision(catalogue, b"\x07garbage")
