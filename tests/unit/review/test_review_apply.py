from dataclasses import replace
from typing import Any

import orjson
import pytest
from review_samples import NO_PRICES, TRIAGE_OUTPUT, decision_with, review_item
from sample_keys import KEYS

from streams.agent.definition import Agent
from streams.contracts.emit import Emitter
from streams.contracts.headers import H_RERUN_NUMBER, H_RERUN_OF, H_SKIP_MODEL
from streams.contracts.out_record import OutRecord
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.review_item import Decision, ReviewItem
from streams.core.settings import Settings
from streams.review.apply import decision_records

EDITED = {**TRIAGE_OUTPUT, "priority": "urgent"}


@pytest.fixture
def triage(agents: dict[str, Agent]) -> Agent:
    return agents["support_triage"]


@pytest.fixture
def emitter(catalogue: Catalogue, triage: Agent) -> Emitter:
    return Emitter(catalogue, Settings(namespace="t1"), [triage], pricing=NO_PRICES)


def decide(item: ReviewItem, action: str, *, reason: str | None = None, output: Any = None) -> Decision:
    text = None if output is None else orjson.dumps(output).decode()
    return decision_with(
        decision_id="dec-1",
        item_id=item.item_id,
        agent=item.agent,
        config_version=item.config_version,
        route=item.route,
        action=action,
        reviewer="ann",
        decided_at_ms=1_800_000_123_000,
        reason=reason,
        output_json=text,
    )


def decoded(catalogue: Catalogue, records: list[OutRecord]) -> list[tuple[str, dict[str, Any]]]:
    return [(r.topic, wire.decode(catalogue, r.value)) for r in records]


def records_of(catalogue, emitter, triage, item, decision, **kw) -> list[tuple[str, dict[str, Any]]]:
    records = decision_records(item, decision, triage, emitter, input_topic="t1.support.tickets", keys=KEYS, **kw)
    assert {r.key for r in records} == {item.event_id.encode()}
    return decoded(catalogue, records)


def test_approve_releases_the_items_output_marked_with_the_reviewer(
    catalogue: Catalogue, emitter: Emitter, triage: Agent
) -> None:
    item = replace(review_item(catalogue, triage), config_version="older")
    (results, result), (audits, audit) = records_of(catalogue, emitter, triage, item, decide(item, "approve"))
    assert (results, audits) == ("t1.support_triage.results", "t1.keel.audit")
    assert result["output"]["category"] == "billing" and result["route"] == "review"
    assert (result["reviewer"], result["human_override"], result["model_version"]) == ("ann", False, "sim-1")
    assert result["config_version"] == "older" and result["produced_at"].timestamp() == 1_800_000_123
    assert (audit["outcome"], audit["route"], audit["route_rule"], audit["review_action"]) == (
        "result",
        "review",
        "big_invoice",
        "approve",
    )
    assert (audit["reviewer"], audit["decision_id"], audit["human_override"]) == ("ann", "dec-1", False)
    assert audit["input_offset"] == 11 and audit["attempts"] == 1 and audit["config_version"] == "older"


def test_edit_releases_the_corrected_output_as_a_human_override(
    catalogue: Catalogue, emitter: Emitter, triage: Agent
) -> None:
    item = review_item(catalogue, triage)
    (_, result), (_, audit) = records_of(catalogue, emitter, triage, item, decide(item, "edit", output=EDITED))
    assert result["output"]["priority"] == "urgent" and result["human_override"] is True
    assert audit["human_override"] is True and orjson.loads(audit["output"]) == EDITED


def test_reject_dead_letters_the_original_input(catalogue: Catalogue, emitter: Emitter, triage: Agent) -> None:
    item = review_item(catalogue, triage)
    records = decision_records(
        item, decide(item, "reject", reason="made up"), triage, emitter, input_topic="x", keys=KEYS
    )
    (dlq, dead), (_, audit) = decoded(catalogue, records)
    assert dlq == "t1.support_triage.dlq" and dead["reason"] == "review_rejected" and dead["stage"] == "review"
    assert dead["original"]["value"] == item.input_value and dead["original"]["key"] == b"T-9"
    assert (dead["original"]["topic"], dead["original"]["offset"]) == ("t1.support.tickets", 11)
    assert "made up" in dead["message"] and "ann" in dead["message"]
    assert dict(records[0].headers)["keel.dlq.error.reason"] == b"review_rejected"
    assert (audit["outcome"], audit["review_action"], audit["review_reason"]) == ("dead_letter", "reject", "made up")
    assert audit["error"]["reason"] == "review_rejected"


def test_a_flagged_item_already_released_its_result(catalogue: Catalogue, emitter: Emitter, triage: Agent) -> None:
    item = review_item(catalogue, triage, route="flag")
    [(topic, audit)] = records_of(catalogue, emitter, triage, item, decide(item, "approve"))
    assert topic == "t1.keel.audit" and (audit["outcome"], audit["route"], audit["review_action"]) == (
        "result",
        "flag",
        "approve",
    )
    [(topic, audit)] = records_of(catalogue, emitter, triage, item, decide(item, "reject", reason="meh"))
    assert topic == "t1.keel.audit" and (audit["outcome"], audit["review_action"], audit["review_reason"]) == (
        "result",
        "reject",
        "meh",
    )
    (topic, result), (_, audit) = records_of(catalogue, emitter, triage, item, decide(item, "edit", output=EDITED))
    assert topic == "t1.support_triage.results" and result["route"] == "flag" and result["human_override"] is True


def _rerunning(agent: Agent) -> Agent:
    handoff = agent.definition.handoff.model_copy(update={"on_reject": "rerun"})
    return replace(agent, definition=agent.definition.model_copy(update={"handoff": handoff}))


@pytest.mark.parametrize("route", ["review", "flag"])
def test_a_rejection_with_on_reject_rerun_writes_the_rerun_and_an_audit_record(
    catalogue: Catalogue, emitter: Emitter, triage: Agent, route: str
) -> None:
    # a flagged item too: its released result is followed by the re-run's, not by a dead letter
    item = review_item(catalogue, triage, route=route)
    decision = decide(item, "reject", reason="again")
    records = decision_records(item, decision, _rerunning(triage), emitter, input_topic="t1.support.tickets", keys=KEYS)
    assert len(records) == 2
    headers = dict(records[0].headers)
    asked = [(headers[H_RERUN_OF].decode(), records[0].topic, int(headers[H_RERUN_NUMBER]))]
    assert asked == [(item.item_id, "t1.support.tickets", 1)]
    assert records[0].value == item.input_value
    audit = wire.decode(catalogue, records[1].value)
    assert (audit["outcome"], audit["review_action"], audit["route"]) == ("rerun", "reject", route)


def test_an_item_of_a_later_pass_releases_the_events_own_records(
    catalogue: Catalogue, emitter: Emitter, triage: Agent
) -> None:
    item = replace(review_item(catalogue, triage), rerun_pass=3, skipped_models=("sim/a",))  # held on pass 2
    assert item.item_id == f"{item.event_id}~2"
    (_, result), (_, audit) = records_of(catalogue, emitter, triage, item, decide(item, "approve"))
    assert result["event_id"] == item.event_id and audit["event_id"] == item.event_id
    rerun, _ = decision_records(
        item, decide(item, "reject", reason="no"), _rerunning(triage), emitter, input_topic="x", keys=KEYS
    )
    headers = dict(rerun.headers)
    assert (headers[H_RERUN_OF], headers[H_RERUN_NUMBER], headers[H_SKIP_MODEL]) == (
        item.item_id.encode(),
        b"3",
        b"sim/a,sim/m",
    )


def test_no_usage_records_the_calls_were_counted_when_made(
    catalogue: Catalogue, emitter: Emitter, triage: Agent
) -> None:
    item = review_item(catalogue, triage)
    for action, extra in (("approve", {}), ("edit", {"output": EDITED}), ("reject", {"reason": "r"})):
        topics = [t for t, _ in records_of(catalogue, emitter, triage, item, decide(item, action, **extra))]
        assert "t1.keel.usage" not in topics


def test_applying_twice_writes_identical_bytes(catalogue: Catalogue, emitter: Emitter, triage: Agent) -> None:
    item = review_item(catalogue, triage)
    decision = decide(item, "edit", output=EDITED)
    first = decision_records(item, decision, triage, emitter, input_topic="x", keys=KEYS)
    assert first == decision_records(item, decision, triage, emitter, input_topic="x", keys=KEYS)
