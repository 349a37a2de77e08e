import dataclasses
from collections.abc import Callable

import orjson

from streams.agent.definition import Agent
from streams.contracts.emit import Emitter
from streams.contracts.headers import H_RERUN_NUMBER, H_RERUN_OF, H_SKIP_MODEL
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.domain import Attempt, DeadLetter, Failure, Result, Review, SourceRecord, Stage, Trace
from streams.core.settings import Settings
from streams.cost.pricing import Price, PriceTable, Pricing
from streams.kafka.outcome_store import Recorded, decode_entry, encode_entry
from streams.review.records import decode_item

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


def _flagged_result(make_source: Callable[..., SourceRecord], make_event, *, pass_number: int = 0) -> Result:
    event = make_event()
    trace = Trace(make_source(event=event), 1, event, "ph", (ATTEMPT,), pass_number=pass_number)
    output_json = orjson.dumps(OUTPUT).decode()
    flagged = Review(
        trace,
        "handoff_rule",
        "category is 'billing'",
        (("system", "s"), ("user", "u")),
        output_json=output_json,
        route="flag",
        rule="money",
        output_model="sim/m",
        output_model_version="sim-1",
        warnings=("w",),
    )
    return Result(trace, OUTPUT, output_json, "sim-1", "flag", ("w",), flagged)


def test_a_flagged_result_is_released_and_put_in_front_of_a_reviewer(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    result = _flagged_result(make_source, make_event, pass_number=2)
    emission = _emitter(catalogue, agents).records(result, agents["support_triage"], now_ms=5)
    assert [r.topic for r in emission.recorded] == [
        "t1.support_triage.results",
        "t1.support_triage.review",
        "t1.keel.audit",
    ]
    released = wire.decode(catalogue, emission.recorded[0].value, subject="support_triage.results-value")
    assert released["route"] == "flag" and released["output"]["category"] == "billing"
    item = wire.decode(catalogue, emission.recorded[1].value, subject="keel.review-value")
    assert (item["route"], item["rule"], item["reason"], item["output_model"]) == (
        "flag",
        "money",
        "handoff_rule",
        "sim/m",
    )
    assert item["output"] == result.output_json and item["warnings"] == ["w"] and item["input_offset"] == 7
    headers = dict(emission.recorded[1].headers)
    assert headers["keel.outcome"] == b"review" and headers["keel.review.pass"] == b"3"
    assert emission.recorded[1].key == result.trace.event_id.encode()
    audit = wire.decode(catalogue, emission.recorded[2].value, subject="keel.audit-value")
    assert (audit["outcome"], audit["route"], audit["route_rule"]) == ("result", "flag", "money")


def test_a_reruns_review_item_is_its_own_item_and_keeps_the_models_left_out(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    # pass 2 of the event: a re-run that left out two models, held for review again. The models come
    # from the verified control headers (the trace), never from the record's raw headers.
    rerun = ((H_RERUN_OF, b"ev~1"), (H_RERUN_NUMBER, b"2"), (H_SKIP_MODEL, b"sim/forged"))
    review = _flagged_result(make_source, make_event, pass_number=2).flagged
    assert review is not None
    source = dataclasses.replace(review.trace.source, headers=rerun)
    trace = dataclasses.replace(review.trace, source=source, skipped_models=("sim/a", "sim/b"))
    emission = _emitter(catalogue, agents).records(
        dataclasses.replace(review, trace=trace), agents["support_triage"], now_ms=5
    )
    record = emission.recorded[0]
    item = decode_item(catalogue, record.value, record.headers)
    assert (item.item_id, item.event_id) == (f"{trace.event_id}~2", trace.event_id)
    assert (item.rerun_pass, item.skipped_models) == (3, ("sim/a", "sim/b"))


def test_a_review_item_chosen_by_a_rule_is_audited_with_its_rule(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    review = dataclasses.replace(_flagged_result(make_source, make_event).flagged, route="review", rule="unsure")
    emission = _emitter(catalogue, agents).records(review, agents["support_triage"], now_ms=5)
    assert [r.topic for r in emission.recorded] == ["t1.support_triage.review", "t1.keel.audit"]
    assert emission.flagged is None
    assert dict(emission.recorded[0].headers)["keel.review.pass"] == b"1"
    audit = wire.decode(catalogue, emission.recorded[1].value, subject="keel.audit-value")
    assert (audit["outcome"], audit["route"], audit["route_rule"], audit["warnings"]) == (
        "review",
        "review",
        "unsure",
        ["w"],
    )


def test_the_outcome_store_entry_of_a_review_settles_redeliveries_but_not_a_rerun(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    emitter = _emitter(catalogue, agents)
    flagged = emitter.records(_flagged_result(make_source, make_event), agents["support_triage"], now_ms=5)
    entry = decode_entry(encode_entry(Recorded(flagged.recorded, 0)))
    assert [r.topic for r in entry.records] == [r.topic for r in flagged.recorded]  # both re-emitted
    assert entry.settles(0) and not entry.settles(1)
