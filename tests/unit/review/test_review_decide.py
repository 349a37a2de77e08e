import orjson
import pytest
from review_samples import TRIAGE_OUTPUT, decision_with, review_item

from streams.agent.definition import Agent
from streams.core.catalogue import Catalogue
from streams.core.review_item import DecisionDraft, ItemState, Refused
from streams.review.decide import accept


@pytest.fixture
def state(catalogue: Catalogue, agents: dict[str, Agent]) -> ItemState:
    return ItemState(review_item(catalogue, agents["support_triage"]), None)


@pytest.fixture
def schemas(agents: dict[str, Agent]) -> dict[str, object]:
    return {name: agent.output_schema.raw for name, agent in agents.items()}


def refusal(draft: DecisionDraft, state: ItemState | None, schemas) -> Refused:
    with pytest.raises(Refused) as caught:
        accept(draft, state, schemas, decision_id="d", now_ms=5)
    return caught.value


def test_approve_and_reject_become_decisions(state: ItemState, schemas) -> None:
    approved = accept(DecisionDraft(state.item.item_id, "approve", " ann "), state, schemas, decision_id="d", now_ms=5)
    assert (approved.action, approved.reviewer, approved.route, approved.output_json) == (
        "approve",
        "ann",
        "review",
        None,
    )
    assert approved.config_version == state.item.config_version and approved.decided_at_ms == 5
    rejected = accept(
        DecisionDraft(state.item.item_id, "reject", "ann", reason=" wrong "), state, schemas, decision_id="d", now_ms=5
    )
    assert rejected.reason == "wrong"


def test_an_edit_is_checked_like_a_model_answer(state: ItemState, schemas) -> None:
    edited = {**TRIAGE_OUTPUT, "priority": "urgent"}
    text = "```json\n" + orjson.dumps(edited).decode() + "\n```"
    decision = accept(
        DecisionDraft(state.item.item_id, "edit", "ann", output_json=text), state, schemas, decision_id="d", now_ms=5
    )
    assert orjson.loads(decision.output_json or "") == edited
    bad = refusal(DecisionDraft(state.item.item_id, "edit", "ann", output_json='{"category": "nope"}'), state, schemas)
    assert bad.code == "invalid_edit" and "$.category: 'nope' is not one of" in bad.message
    assert "$.priority: required field is missing" in bad.message
    assert (
        refusal(DecisionDraft(state.item.item_id, "edit", "ann", output_json="[1]"), state, schemas).code
        == "invalid_edit"
    )
    assert refusal(DecisionDraft(state.item.item_id, "edit", "ann"), state, schemas).code == "invalid_edit"


def test_each_refusal_has_its_code(catalogue: Catalogue, agents: dict[str, Agent], state: ItemState, schemas) -> None:
    item_id = state.item.item_id
    assert refusal(DecisionDraft("nope", "approve", "ann"), None, schemas).code == "no_such_item"
    decided = ItemState(
        state.item,
        decision_with(decision_id="d0", item_id=item_id, config_version="c", reviewer="bob", decided_at_ms=1),
    )
    taken = refusal(DecisionDraft(item_id, "reject", "ann", reason="r"), decided, schemas)
    assert taken.code == "already_decided" and "bob" in taken.message
    assert refusal(DecisionDraft(item_id, "reject", "ann", reason="  "), state, schemas).code == "missing_reason"
    assert refusal(DecisionDraft(item_id, "delete", "ann"), state, schemas).code == "bad_request"  # type: ignore[arg-type]
    assert refusal(DecisionDraft(item_id, "approve", ""), state, schemas).code == "bad_request"
    assert refusal(DecisionDraft(item_id, "approve", "ann"), state, {}).code == "bad_request"  # agent not served here
    empty = ItemState(review_item(catalogue, agents["support_triage"], output=None), None)
    assert refusal(DecisionDraft(empty.item.item_id, "approve", "ann"), empty, schemas).code == "bad_request"
