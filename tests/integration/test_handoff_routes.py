"""Handoff on the real broker: outputs a rule picks are held for review or flagged, every route is in the
audit record with its rule, and a reviewer's re-run runs the event again without the rejected model."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from harness import Stack, model_calls, run_through, until, worker_stack

from streams.apps.review.shell import build_process, running
from streams.cli.watch import Observed, Tally
from streams.contracts.control_keys import load_control_keys
from streams.core import wire
from streams.core.review_item import DecisionDraft, ReviewItem
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer
from streams.pipeline.handoff import rerun_pass, rerun_record
from streams.review.records import ITEM_SUBJECT, decode_item

THRESHOLD = 50  # the simulator's totals are drawn from 0 to 100
FLAGGED_TYPES = ["credit_note", "not_an_invoice"]
HANDOFF = {
    "invoice_extraction": {
        "rules": [
            {"name": "large_total", "route": "review", "field": "total", "above": THRESHOLD},
            {"name": "odd_document", "route": "flag", "field": "document_type", "in": FLAGGED_TYPES},
        ],
        "on_reject": "rerun",
    },
    "support_triage": {
        "rules": [{"name": "fallback", "route": "review", "when": "fallback_model"}],
        "on_reject": "rerun",
    },
}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with worker_stack(
        kafka_bootstrap,
        tmp_path_factory.mktemp("keel-state"),
        provider="sim",
        base_url=sim_url,
        handoff=HANDOFF,
        fallback_model="backup",
        env={"KEEL_CIRCUIT_FAILURE_THRESHOLD": "1000"},  # the outage below is per prompt, not per model
    ) as stack:
        yield stack


def _invoice(make_event: Any, number: int) -> Any:
    text = f"Invoice INV-{number} from Supplier {number} Ltd, payable within {number + 10} days."
    return make_event(business_key=f"DOC-{number}", payload={"document_id": f"DOC-{number}", "text": text})


def _audit(tally: Tally, event_id: str) -> dict[str, Any]:
    [audit] = tally.by_kind["audit"][event_id]
    return audit.value


def _route_seen(tally: Tally, event_id: str) -> str:
    """Checks one invoice's records against the rules; returns the route they show."""
    kinds, audit = tally.outcome_kinds(event_id), _audit(tally, event_id)
    if kinds == ["review"]:
        [item] = tally.by_kind["review"][event_id]
        assert Decimal(str(orjson.loads(item.value["output"])["total"])) > THRESHOLD
        assert (item.value["route"], item.value["rule"], item.value["reason"]) == (
            "review",
            "large_total",
            "handoff_rule",
        )
        assert (audit["outcome"], audit["route"], audit["route_rule"]) == ("review", "review", "large_total")
        return "review"
    [result] = tally.by_kind["result"][event_id]
    output = result.value["output"]
    assert output["total"] <= THRESHOLD
    if kinds == ["result", "review"]:
        [item] = tally.by_kind["review"][event_id]
        assert output["document_type"] in FLAGGED_TYPES
        assert (result.value["route"], item.value["route"], item.value["rule"]) == ("flag", "flag", "odd_document")
        assert orjson.loads(item.value["output"])["document_type"] == output["document_type"]
        assert (audit["outcome"], audit["route"], audit["route_rule"]) == ("result", "flag", "odd_document")
        return "flag"
    assert kinds == ["result"] and output["document_type"] == "invoice"
    assert (result.value["route"], audit["route"], audit["route_rule"]) == ("autonomous", "autonomous", None)
    return "autonomous"


async def test_rules_send_outputs_to_review_or_flag_them_and_the_audit_names_the_rule(
    stack: Stack, make_event: Any
) -> None:
    invoices = [_invoice(make_event, n) for n in range(16)]
    ids, tally = await run_through(stack, events={"finance.invoices": invoices})
    routes = [_route_seen(tally, event_id) for event_id in ids]
    assert {"review", "flag", "autonomous"} <= set(routes), routes  # the sample covers every route
    assert all(len(tally.by_kind["audit"][i]) == 1 for i in ids)


def _item(stack: Stack, observed: Observed) -> ReviewItem:
    """The review record as the review service reads it."""
    data = wire.encode(stack.catalogue.by_subject(ITEM_SUBJECT), observed.value)
    return decode_item(stack.catalogue, data, observed.headers)


async def test_a_rerun_runs_the_event_again_without_the_rejected_model(
    stack: Stack, sim_url: str, make_event: Any
) -> None:
    # the first model's outage outlasts its retries, so the backup answers and the fallback rule holds it
    ticket = make_event(payload={"ticket_id": "T-77", "body": "My invoice is wrong [[sim:outage=3]]"})
    event_id = ticket.event_id
    _, first = await run_through(stack, events={"support.tickets": [ticket]})
    [held] = first.by_kind["review"][event_id]
    assert first.outcome_kinds(event_id) == ["review"]
    assert (held.value["rule"], held.value["output_model"]) == ("fallback", "sim/backup")
    record = rerun_record(
        _item(stack, held),
        topic=stack.topic("support.tickets"),
        pass_number=rerun_pass(held.headers),
        keys=load_control_keys(stack.settings),  # the worker's: both use the stack's state dir
    )
    assert dict(record.headers)["keel.review.pass"] == b"1"
    calls = model_calls(sim_url)

    async def rerun() -> None:
        async with RecordProducer(client_config(stack.settings)) as producer:
            await producer.send_all([record])

    _, second = await run_through(stack, action=rerun, expect=[event_id])
    assert second.outcome_kinds(event_id) == ["result"]  # the first model answers now: no fallback, no rule
    assert model_calls(sim_url) == calls + 1
    [usage] = second.by_kind["usage"][event_id]
    assert (usage.value["model"], usage.value["purpose"], usage.value["outcome"]) == (
        "smollm2-135m-instruct",
        "initial",
        "ok",
    )
    audit = _audit(second, event_id)
    assert (audit["outcome"], audit["route"], audit["route_rule"]) == ("result", "autonomous", None)
    assert [a["model"] for a in audit["attempt_log"]] == ["smollm2-135m-instruct"]

    # the re-run delivered again is answered from the outcome store, like any redelivery
    _, third = await run_through(stack, action=rerun, expect=[event_id])
    assert third.outcome_kinds(event_id) == ["result"] and model_calls(sim_url) == calls + 1


async def test_each_rejection_through_the_review_service_reruns_without_every_rejected_model(
    stack: Stack, sim_url: str, make_event: Any
) -> None:
    invoices = [_invoice(make_event, n) for n in range(100, 106)]
    ids, first = await run_through(stack, events={"finance.invoices": invoices})
    held = [first.by_kind["review"][i][0] for i in ids if first.outcome_kinds(i) == ["review"]]
    assert held, "no invoice over the threshold in this sample"
    event_id = held[0].value["event_id"]
    assert held[0].value["output_model"] == "sim/smollm2-135m-instruct"
    calls = model_calls(sim_url)
    settings = stack.settings.model_copy(update={"review_web_port": 0})
    process = build_process(settings)
    async with running(settings, process):
        service = process.service

        async def reject(item_id: str) -> None:
            await until(lambda: service.get(item_id) is not None, what=f"review item {item_id}")
            await service.decide(DecisionDraft(item_id, "reject", "ann", reason="the total is wrong"))

        # rejected: the re-run leaves the first model out; the backup reads the same total, so the rule
        # holds it again, now as a new item (the event's pass 1) that the service can decide
        _, second = await run_through(stack, action=lambda: reject(event_id), expect=[event_id])
        [again] = second.by_kind["review"][event_id]
        assert (again.value["output_model"], again.value["rule"]) == ("sim/backup", "large_total")
        assert [u.value["model"] for u in second.by_kind["usage"][event_id]] == ["backup"]
        assert model_calls(sim_url) == calls + 1
        item = _item(stack, again)
        assert (item.item_id, item.skipped_models) == (f"{event_id}~1", ("sim/smollm2-135m-instruct",))

        # rejected again: both models are left out, so no model is called and the event is a dead letter
        _, third = await run_through(stack, action=lambda: reject(item.item_id), expect=[event_id])
        [dead] = third.by_kind["dead_letter"][event_id]
        assert dead.value["reason"] == "no_model_left_for_rerun" and model_calls(sim_url) == calls + 1
        assert "sim/smollm2-135m-instruct, sim/backup" in dead.value["message"]
        decisions = [a.value for a in (*second.by_kind["audit"][event_id], *third.by_kind["audit"][event_id])]
        assert sorted((a["outcome"], a["review_action"]) for a in decisions if a["review_action"]) == [
            ("rerun", "reject"),
            ("rerun", "reject"),
        ]
