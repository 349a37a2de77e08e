"""What an evaluation runs on: audited events (latest record each), approved reviews, golden lines."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from streams.core.catalogue import Catalogue
from streams.core.domain import RequestEvent
from streams.core.errors import EvalInputError
from streams.core.review_item import Decision, ReviewItem
from streams.eval.inputs import audit_inputs, duration_ms, golden_input, review_inputs
from streams.pipeline.decode import encode_request

EVENT = RequestEvent("e1", 1_000, "acme", "zendesk", "T-1", {"body": "hi"}, '{"body": "hi"}', "tr")


def audited(event_id: str, *, agent: str = "support_triage", output: str | None = '{"category": "bug"}',
            payload: str | None = '{"body": "hi"}') -> dict[str, object]:  # fmt: skip
    return {"event_id": event_id, "agent": agent, "tenant": "acme", "business_key": "T-1", "trace_id": None,
            "input_payload": payload, "output": output, "received_at": 5_000}  # fmt: skip


def test_durations() -> None:
    assert duration_ms("90s") == 90_000 and duration_ms("24h") == 86_400_000 and duration_ms("1.5d") == 129_600_000
    with pytest.raises(EvalInputError, match="30m, 24h or 7d"):
        duration_ms("yesterday")


def test_each_audited_event_once_by_its_latest_record_for_the_agent_and_the_window() -> None:
    records = [
        (100, audited("old")),
        (200, audited("a", output=None)),
        (210, audited("other", agent="invoice_extraction")),
        (220, audited("undecodable", payload=None)),
        (230, audited("b")),
        (240, audited("a", output='{"category": "billing"}')),  # the reviewer's output
    ]
    inputs = audit_inputs(records, agent="support_triage", since_ms=150)
    assert [i.event.event_id for i in inputs] == ["b", "a"]
    assert inputs[1].expected == {"category": "billing"}
    event = inputs[0].event
    assert (event.tenant, event.business_key, event.payload, event.occurred_at_ms) == ("acme", "T-1", {"body": "hi"},
                                                                                       5_000)  # fmt: skip
    assert [i.event.event_id for i in audit_inputs(records, agent="support_triage", since_ms=0, limit=1)] == ["a"]


def item(catalogue: Catalogue, event_id: str, *, output: str | None = '{"category": "bug"}') -> ReviewItem:
    return ReviewItem(
        event_id, "support_triage", "1", "c1", "acme", "T-1", 1_000, 2_000, "review", None, "handoff_rule", "",
        '{"body": "hi"}', (), (), output, (), None, "in", 0, 0, b"T-1", encode_request(catalogue, EVENT),
        None, None,
    )  # fmt: skip


def decision(item_id: str, action: str, output: str | None = None) -> Decision:
    return Decision(f"d-{item_id}-{action}", item_id, "support_triage", "c1", "review", action, "ana", 3_000, None,
                    output)  # type: ignore[arg-type]  # fmt: skip


def test_approved_and_edited_items_by_their_first_decision_with_the_approved_output(catalogue: Catalogue) -> None:
    items = [item(catalogue, "e1"), item(catalogue, "e2"), item(catalogue, "e3"), item(catalogue, "e4")]
    decisions = [
        decision("e1", "approve"),
        decision("e2", "edit", '{"category": "billing"}'),
        decision("e3", "reject"),
        decision("e1", "reject"),  # later: not the one applied
        decision("missing", "approve"),
    ]
    inputs = review_inputs(items, decisions, catalogue, agent="support_triage", max_event_bytes=1_000_000)
    assert [i.expected for i in inputs] == [{"category": "bug"}, {"category": "billing"}]
    assert inputs[0].event == EVENT  # the item's original record


def test_an_item_without_its_original_record_is_rebuilt_from_its_fields(catalogue: Catalogue) -> None:
    old = dataclasses.replace(item(catalogue, "e1"), input_value=b"")
    (only,) = review_inputs([old], [decision("e1", "approve")], catalogue, agent="support_triage",
                            max_event_bytes=1_000_000)  # fmt: skip
    assert (only.event.event_id, only.event.payload, only.event.tenant) == ("e1", {"body": "hi"}, "acme")


def test_a_golden_line_needs_an_event_and_an_expected_object() -> None:
    assert golden_input({"event": {}, "expected": {"a": 1}}, line=1, event=EVENT).expected == {"a": 1}
    for document in ({"event": {}}, {"event": {}, "expected": [1]}, orjson.loads(b"[]")):
        with pytest.raises(EvalInputError, match="line 3"):
            golden_input(document, line=3, event=EVENT)
    with pytest.raises(EvalInputError):
        golden_input({"expected": {}}, line=1, event=None)
