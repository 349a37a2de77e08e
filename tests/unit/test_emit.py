from collections.abc import Callable

import orjson

from streams import wire
from streams.agents import Agent
from streams.catalogue import Catalogue
from streams.domain import Attempt, DeadLetter, Failure, Result, Review, SourceRecord, Stage, Trace
from streams.emit import Emitter
from streams.pricing import Price, PriceTable, Pricing
from streams.settings import Settings

ATTEMPT = Attempt("sim", "m", 1, 1_800_000_000_000, 0.2, 100, 30, "sim-1", "ok")
PRICING = Pricing(
    PriceTable(version="p-3", prices=(Price(provider="sim", model="m", input_usd_per_mtok=2, output_usd_per_mtok=8),))
)
OUTPUT = {"category": "billing", "priority": "low", "summary": "s", "suggested_reply": "r", "confidence": 0.5}


def _emitter(catalogue: Catalogue, agents: dict[str, Agent]) -> Emitter:
    return Emitter(catalogue, Settings(namespace="t1"), list(agents.values()), pricing=PRICING)


def test_result_audit_and_usage_records(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    event = make_event(trace_id="tr-1")
    trace = Trace(make_source(event=event), 1, event, "ph", (ATTEMPT, ATTEMPT), decode_ms=1.0, total_ms=3.0)
    result = Result(trace, OUTPUT, orjson.dumps(OUTPUT).decode(), "sim-1", warnings=("w",))
    agent = agents["support_triage"]
    records = _emitter(catalogue, agents).records(result, agent, now_ms=5).all()
    assert [r.topic for r in records] == [
        "t1.support_triage.results",
        "t1.keel.audit",
        "t1.keel.usage",
        "t1.keel.usage",
    ]
    assert {r.key for r in records} == {event.event_id.encode()}
    main = wire.decode(catalogue, records[0].value, subject="support_triage.results-value")
    assert main["output"]["category"] == "billing" and main["tenant"] == "acme-retail" and main["trace_id"] == "tr-1"
    headers = dict(records[0].headers)
    assert headers["keel.event_id"] == event.event_id.encode() and headers["keel.trace_id"] == b"tr-1"
    assert headers["keel.config_version"] == agent.config_version.encode()
    audit = wire.decode(catalogue, records[1].value, subject="keel.audit-value")
    assert audit["outcome"] == "result" and audit["prompt_hash"] == "ph" and audit["model_version"] == "sim-1"
    assert audit["input_payload"] == event.payload_json and audit["warnings"] == ["w"]
    assert audit["prompt_version"] == agent.templates.version and audit["attempts"] == 2


def test_dead_letter_keeps_the_original_and_says_why(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    source = make_source(b"\x05not avro")
    failure = Failure(Stage.DECODE, "NotConfluentFramed", "wrong_magic_byte", "first byte is 0x05")
    dead = DeadLetter(Trace(source, 1), failure)
    records = _emitter(catalogue, agents).records(dead, agents["support_triage"], now_ms=5).all()
    assert [r.topic for r in records] == ["t1.support_triage.dlq", "t1.keel.audit"]
    value = wire.decode(catalogue, records[0].value, subject="keel.dlq-value")
    assert value["original"]["value"] == b"\x05not avro" and value["original"]["key"] == b"T-1001"
    assert value["original"]["headers"] == [{"key": "h", "value": b"v"}]
    assert (value["stage"], value["reason"], value["attempts"]) == ("decode", "wrong_magic_byte", 0)
    headers = dict(records[0].headers)
    assert headers["keel.dlq.original.topic"] == b"support.tickets"
    assert headers["keel.dlq.original.offset"] == b"7" and headers["keel.dlq.original.partition"] == b"2"
    assert headers["keel.dlq.error.reason"] == b"wrong_magic_byte" and headers["h"] == b"v"
    assert records[0].key == b"undecodable:support.tickets/2/7"
    audit = wire.decode(catalogue, records[1].value, subject="keel.audit-value")
    assert audit["outcome"] == "dead_letter" and audit["error"]["stage"] == "decode"
    assert audit["input_payload"] is None and audit["tenant"] is None


def test_review_item_has_what_a_reviewer_needs(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    event = make_event()
    refused = Attempt("sim", "m", 1, 1_800_000_000_000, 0.2, 100, 0, "sim-1", "model_refused")
    trace = Trace(make_source(event=event), 1, event, "ph", (refused,))
    review = Review(trace, "model_refused", "the model declined", (("system", "s"), ("user", "u")))
    records = _emitter(catalogue, agents).records(review, agents["support_triage"], now_ms=5).all()
    assert [r.topic for r in records] == ["t1.support_triage.review", "t1.keel.audit", "t1.keel.usage"]
    item = wire.decode(catalogue, records[0].value, subject="keel.review-value")
    assert item["reason"] == "model_refused" and item["request_payload"] == event.payload_json
    assert item["prompt"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert item["attempts"][0]["outcome"] == "model_refused"
    assert dict(records[0].headers)["keel.outcome"] == b"review"
    audit = wire.decode(catalogue, records[1].value, subject="keel.audit-value")
    assert (audit["outcome"], audit["route"], audit["error"]["reason"]) == ("review", "review", "model_refused")
    assert audit["attempt_log"][0]["purpose"] == "initial"


def test_every_usage_record_carries_its_cost_or_says_it_has_no_price(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    event = make_event()
    failed = Attempt("sim", "m", 2, 1_800_000_000_000, 5.0, 0, 0, None, "provider_timeout", "retry")
    unpriced = Attempt("other", "x", 3, 1_800_000_000_000, 0.2, 100, 30, "x-1", "ok", "fallback")
    trace = Trace(make_source(event=event), 1, event, "ph", (ATTEMPT, failed, unpriced), decode_ms=1.0, total_ms=3.0)
    result = Result(trace, OUTPUT, orjson.dumps(OUTPUT).decode(), "x-1")
    usage = [
        wire.decode(catalogue, r.value, subject="keel.usage-value")
        for r in _emitter(catalogue, agents).records(result, agents["support_triage"], now_ms=5).usage
    ]
    assert [(u["attempt"], u["purpose"]) for u in usage] == [(1, "initial"), (2, "retry"), (3, "fallback")]
    assert usage[0]["cost_usd"] == (100 * 2 + 30 * 8) / 1e6 and usage[0]["price_version"] == "p-3"
    assert usage[1]["cost_usd"] == 0.0  # failed before the provider billed anything
    assert usage[2]["cost_usd"] is None and usage[2]["price_version"] is None  # unpriced: flagged, not $0
