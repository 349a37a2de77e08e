"""Usage records v3 (schemas/usage_v3.avsc, id 13): the queue wait and estimated tokens, written and
read back, counted by the aggregation, and compatible both ways with v2 (id 6); v4 (id 17, written
now) adds the kind of call and a tool call's answer size."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro
import orjson

from streams.agent.definition import Agent
from streams.contracts.emit import Emitter
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.domain import Attempt, Result, SourceRecord, Trace
from streams.core.settings import Settings
from streams.cost.pricing import Price, PriceTable, Pricing
from streams.cost.usage_windows import UsageRecord, UsageStats

PRICING = Pricing(
    PriceTable(version="p-3", prices=(Price(provider="sim", model="m", input_usd_per_mtok=2, output_usd_per_mtok=8),))
)
OUTPUT = {"category": "billing", "priority": "low", "summary": "s", "suggested_reply": "r", "confidence": 0.5}
V2 = {
    "event_id": "e1",
    "agent": "support_triage",
    "agent_version": "1",
    "tenant": "acme",
    "provider": "sim",
    "model": "m",
    "model_version": None,
    "attempt": 1,
    "purpose": "initial",
    "tokens_in": 3,
    "tokens_out": 4,
    "latency_ms": 1.5,
    "outcome": "ok",
    "at": 1_700_000_000_000,
    "cost_usd": 0.0001,
    "price_version": "p-3",
}


def usage_of(
    attempts: tuple[Attempt, ...], catalogue: Catalogue, agents: dict[str, Agent], source: SourceRecord, event: Any
) -> list[dict[str, Any]]:
    emitter = Emitter(catalogue, Settings(namespace="t1"), list(agents.values()), pricing=PRICING)
    trace = Trace(source, 1, event, "ph", attempts, decode_ms=1.0, total_ms=3.0)
    result = Result(trace, OUTPUT, orjson.dumps(OUTPUT).decode(), "sim-1")
    records = emitter.records(result, agents["support_triage"], now_ms=5).usage
    assert {wire.read_header(r.value) for r in records} == {17}
    return [wire.decode(catalogue, r.value, subject="keel.usage-value") for r in records]


def test_a_usage_record_carries_the_queue_wait_and_whether_its_tokens_are_estimated(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    event = make_event()
    counted = Attempt("sim", "m", 1, 1_800_000_000_000, 0.2, 100, 30, "sim-1", "ok", queued_s=1.5)
    timed_out = Attempt(
        "sim", "m", 2, 1_800_000_000_000, 10.0, 400, 0, None, "provider_timeout", "retry", tokens_estimated=True
    )
    first, second = usage_of((counted, timed_out), catalogue, agents, make_source(event=event), event)
    assert (first["queued_ms"], first["tokens_estimated"], first["tokens_in"]) == (1500.0, False, 100)
    assert (second["queued_ms"], second["tokens_estimated"], second["tokens_in"]) == (0.0, True, 400)
    assert second["cost_usd"] == 400 * 2 / 1e6  # priced from the estimate: not free
    record = UsageRecord.from_value(second, partition=0, offset=1, at_ms=wire.epoch_ms(second["at"]))
    stats = UsageStats.of(record)
    assert (stats.tokens_in, stats.cost_usd) == (400, 400 * 2 / 1e6)  # and `keel usage` counts it


def test_v2_and_v3_records_read_each_other_with_the_defaults(catalogue: Catalogue) -> None:
    v2, v3 = catalogue.by_id(6), catalogue.by_id(13)
    assert v2 is not None and v3 is not None

    def written(schema: Any, value: dict[str, Any]) -> io.BytesIO:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema.parsed, value)
        buffer.seek(0)
        return buffer

    old_by_new = fastavro.schemaless_reader(written(v2, V2), v2.parsed, v3.parsed)
    assert (old_by_new["queued_ms"], old_by_new["tokens_estimated"]) == (0.0, False)
    new = {**V2, "queued_ms": 250.0, "tokens_estimated": True}
    new_by_old = fastavro.schemaless_reader(written(v3, new), v3.parsed, v2.parsed)
    assert new_by_old["tokens_in"] == 3 and "queued_ms" not in new_by_old
    framed = wire.encode(v2, V2)  # a record already on keel.usage decodes as before
    assert wire.decode(catalogue, framed, subject="keel.usage-value")["cost_usd"] == 0.0001


def test_a_tool_call_is_a_usage_record_of_its_own_kind_and_costs_no_model(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    event = make_event()
    model = Attempt("sim", "m", 1, 1_800_000_000_000, 0.2, 100, 30, "sim-1", "ok")
    tool = Attempt("crm", "lookup_customer", 2, 1_800_000_000_100, 0.05, 0, 0, None, "http_404", "tool",
                   kind="tool", response_bytes=321)  # fmt: skip
    first, second = usage_of((model, tool), catalogue, agents, make_source(event=event), event)
    assert (first["kind"], first["response_bytes"], first["cost_usd"]) == ("model", 0, (100 * 2 + 30 * 8) / 1e6)
    assert (second["kind"], second["provider"], second["model"], second["outcome"]) == (
        "tool",
        "crm",
        "lookup_customer",
        "http_404",
    )
    assert (second["response_bytes"], second["cost_usd"], second["price_version"]) == (321, 0.0, None)
    v3, v4 = catalogue.by_id(13), catalogue.by_id(17)
    assert v3 is not None and v4 is not None and catalogue.by_subject("keel.usage-value") is v4
    old = wire.encode(v3, {**V2, "queued_ms": 0.0, "tokens_estimated": False})
    assert wire.decode(catalogue, old, subject="keel.usage-value")["cost_usd"] == 0.0001  # v3 still reads
