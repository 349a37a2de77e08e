"""Routing decisions over a validated output, QA sampling, and the re-run record and its reading."""

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from review_samples import item_with
from sample_keys import KEYS

from streams.agent.definition import Agent
from streams.agent.handoff_policy import HandoffPolicy, HandoffRule
from streams.contracts.control import H_SIGNATURE, Control, read_control
from streams.contracts.headers import H_RERUN_NUMBER, H_RERUN_OF, H_SKIP_MODEL
from streams.contracts.out_record import OutRecord
from streams.core.domain import SourceRecord
from streams.core.review_item import ReviewItem
from streams.pipeline.handoff import (
    HandoffDecision,
    decide_handoff,
    qa_sampled,
    rerun_pass,
    rerun_record,
    skipped_models,
    without_models,
)

RULES = (
    HandoffRule(name="large_total", route="review", field="total", above=500),
    HandoffRule(name="odd_document", route="flag", field="document_type", in_=("credit_note", "not_an_invoice")),
    HandoffRule(name="small_total", route="flag", field="total", below=1),
    HandoffRule(name="unsure", route="review", confidence_below=0.7),
    HandoffRule(name="fixed", route="flag", when="validation_warnings"),
    HandoffRule(name="fallback", route="review", when="fallback_model"),
)
POLICY = HandoffPolicy(rules=RULES)
INVOICE = {"document_type": "invoice", "total": Decimal("120.5000"), "confidence": 0.9}


def _decide(
    output: dict[str, Any], *, policy: HandoffPolicy = POLICY, warnings: tuple[str, ...] = (), fallback: bool = False
) -> HandoffDecision:
    return decide_handoff(policy, output, warnings=warnings, used_fallback=fallback, event_id="e-1")


@pytest.mark.parametrize(
    ("change", "warnings", "fallback", "route", "rule"),
    [
        ({}, (), False, "autonomous", None),
        ({"total": Decimal("500.0001")}, (), False, "review", "large_total"),
        ({"total": Decimal("500")}, (), False, "autonomous", None),  # above, not at
        ({"document_type": "credit_note"}, (), False, "flag", "odd_document"),
        ({"total": Decimal("0.99")}, (), False, "flag", "small_total"),
        ({"confidence": 0.69}, (), False, "review", "unsure"),
        ({"confidence": None}, (), False, "autonomous", None),  # a null value matches no rule
        ({}, ("total: rounded to scale 4",), False, "flag", "fixed"),
        ({}, (), True, "review", "fallback"),
        # first match wins, in declared order
        (
            {"total": Decimal("900"), "document_type": "credit_note", "confidence": 0.1},
            ("w",),
            True,
            "review",
            "large_total",
        ),
        ({"document_type": "not_an_invoice", "confidence": 0.1}, (), True, "flag", "odd_document"),
    ],
)
def test_the_first_matching_rule_picks_the_route(
    change: dict[str, Any], warnings: tuple[str, ...], fallback: bool, route: str, rule: str | None
) -> None:
    decision = _decide({**INVOICE, **change}, warnings=warnings, fallback=fallback)
    assert (decision.route, decision.rule) == (route, rule)
    assert (decision.why == "") == (rule is None)


def test_the_decision_says_why_for_the_reviewer() -> None:
    decision = _decide({**INVOICE, "total": Decimal("812.5")})
    assert decision.why == "total 812.5 is above 500" and decision.reason == "handoff_rule"
    assert _decide({**INVOICE, "document_type": "credit_note"}).why.startswith("document_type is 'credit_note'")


def test_a_policy_route_applies_when_no_rule_matches() -> None:
    everything = HandoffPolicy(route="review", rules=RULES[:1], qa_sample_rate=1.0)
    decision = _decide(INVOICE, policy=everything)
    assert (decision.route, decision.rule, decision.reason) == ("review", None, "handoff_route")
    assert _decide({**INVOICE, "total": 501}, policy=everything).rule == "large_total"


def test_qa_sampling_sends_a_share_of_autonomous_outputs_to_review_the_same_way_every_time() -> None:
    policy = HandoffPolicy(rules=RULES, qa_sample_rate=0.1)
    decisions = [
        decide_handoff(policy, INVOICE, warnings=(), used_fallback=False, event_id=f"ev-{i}") for i in range(4000)
    ]
    sampled = [d for d in decisions if d.route == "review"]
    assert 320 < len(sampled) < 480
    assert {(d.rule, d.reason) for d in sampled} == {("qa_sample", "qa_sample")}
    again = [decide_handoff(policy, INVOICE, warnings=(), used_fallback=False, event_id=f"ev-{i}") for i in range(4000)]
    assert again == decisions  # a redelivery decides the same way
    # a rule that matches wins over sampling; sampling only takes would-be-autonomous outputs
    flagged = decide_handoff(
        policy, {**INVOICE, "document_type": "credit_note"}, warnings=(), used_fallback=False, event_id="x"
    )
    assert flagged.rule == "odd_document"


def test_qa_sampling_bounds() -> None:
    ids = [f"id-{i}" for i in range(500)]
    assert not any(qa_sampled(i, 0.0) for i in ids)
    assert all(qa_sampled(i, 1.0) for i in ids)


def _item(*, output_model: str | None = "sim/model-a") -> ReviewItem:
    return item_with(
        event_id="ev-9",
        agent="invoice_extraction",
        rule="large_total",
        input_topic="ns.finance.invoices",
        input_partition=3,
        input_offset=41,
        input_key=b"DOC-1",
        input_value=b"\x00\x00\x00\x00\x01avro",
        output_model=output_model,
        output_model_version="v",
    )


def _read(record: OutRecord, *, offset: int = 99) -> Control:
    """The record as the worker reads it back from its topic."""
    assert record.partition is not None
    return read_control(
        KEYS, SourceRecord(record.topic, record.partition, offset, None, record.key, record.value, record.headers)
    )


def test_a_rerun_record_is_the_original_record_in_its_partition_asking_for_a_new_pass() -> None:
    record = rerun_record(_item(), topic="ns.finance.invoices", pass_number=2, keys=KEYS)
    assert (record.topic, record.partition, record.key, record.value) == (
        "ns.finance.invoices",
        3,
        b"DOC-1",
        b"\x00\x00\x00\x00\x01avro",
    )
    headers = dict(record.headers)
    assert headers.pop(H_SIGNATURE).startswith(b"v1.k2.")
    assert headers == {H_RERUN_OF: b"ev-9", H_RERUN_NUMBER: b"2", H_SKIP_MODEL: b"sim/model-a"}
    assert _read(record) == Control(2, ("sim/model-a",))
    # an item without an output (a refusal sent to review) re-runs the whole chain
    assert _read(rerun_record(_item(output_model=None), topic="t", pass_number=1, keys=KEYS)) == Control(1)


def test_a_rerun_of_a_rerun_leaves_out_every_rejected_model_and_is_its_own_item() -> None:
    # the item of pass 1 (a re-run without model-a), whose output model-b gave: rejected again
    item = dataclasses.replace(_item(output_model="sim/model-b"), rerun_pass=2, skipped_models=("sim/model-a",))
    assert item.item_id == "ev-9~1" and _item().item_id == "ev-9"
    record = rerun_record(item, topic="t", pass_number=item.rerun_pass, keys=KEYS)
    assert dict(record.headers)[H_RERUN_OF] == b"ev-9~1"
    assert _read(record).skip_models == ("sim/model-a", "sim/model-b")
    # a model both skipped and answering (a hand-written header) is named once
    twice = dataclasses.replace(item, skipped_models=("sim/model-b",))
    assert dict(rerun_record(twice, topic="t", pass_number=2, keys=KEYS).headers)[H_SKIP_MODEL] == b"sim/model-b"


def test_skipped_models_reads_the_review_records_header_list() -> None:
    assert skipped_models(((H_SKIP_MODEL, b"a/x,b/y"),)) == ("a/x", "b/y")
    assert skipped_models(((H_SKIP_MODEL, b""),)) == () and skipped_models(()) == ()
    assert skipped_models(((H_SKIP_MODEL, b"\xff\xfe"),)) == ()  # not one the worker wrote: nothing to skip


@pytest.mark.parametrize("raw", [b"4", b"0", b"two", b"", b"9" * 5000, b"\xff", None])
def test_the_pass_a_review_record_offers_for_a_rerun_is_a_small_number_or_1(raw: bytes | None) -> None:
    headers = () if raw is None else ((H_RERUN_NUMBER, raw),)
    assert rerun_pass(headers) == (4 if raw == b"4" else 1)


def test_without_models_leaves_the_rest_of_the_chain_in_order(agents: dict[str, Agent]) -> None:
    agent = agents["support_triage"]
    first = agent.definition.model_chain[0]
    chain = [first, first.model_copy(update={"model": "b"}), first.model_copy(update={"model": "c"})]
    longer = dataclasses.replace(agent, definition=agent.definition.model_copy(update={"model_chain": chain}))
    reduced = without_models(longer, (f"{first.provider}/b",))
    assert reduced is not None and [s.model for s in reduced.definition.model_chain] == [first.model, "c"]
    assert reduced.config_version == agent.config_version  # the same agent, not a new configuration
    both = without_models(longer, (first.key, f"{first.provider}/c"))
    assert both is not None and [s.model for s in both.definition.model_chain] == ["b"]
    assert without_models(agent, (first.key,)) is None
    assert without_models(agent, ("other/model",)) is not None
