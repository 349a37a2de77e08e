"""Which version decides an event, and how promote and rollback move the labels."""

from __future__ import annotations

import dataclasses
import hashlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.agent.definition import Agent, EvaluationPolicy, config_digest
from streams.agent.versions import (
    Change,
    Labels,
    canary_bucket,
    diff,
    fixed_changes,
    promoted,
    rolled_back,
    routed_version,
    version_of,
)
from streams.core.errors import AgentConfigRefused

CHANGE = Change("ana", 1_000, "why")


@given(st.text(max_size=80))
def test_an_event_always_lands_in_the_same_bucket(event_id: str) -> None:
    assert 0 <= canary_bucket(event_id) < 100
    assert canary_bucket(event_id) == canary_bucket(event_id)


def test_a_canary_takes_about_its_share_of_events() -> None:
    labels = Labels("a", "v1", canary="v2", canary_percent=20.0)
    routed = [routed_version(labels, f"evt-{n}") for n in range(10_000)]
    assert 1_800 < routed.count("v2") < 2_200
    assert set(routed) == {"v1", "v2"}
    assert {routed_version(Labels("a", "v1"), f"evt-{n}") for n in range(100)} == {"v1"}


def test_promote_canary_and_rollback_move_the_labels() -> None:
    first = promoted(None, "a", "v1", CHANGE, canary_percent=None)
    assert (first.stable, first.stable_history, first.change, first.author) == ("v1", ("v1",), "promote", "ana")
    second = promoted(first, "a", "v2", CHANGE, canary_percent=None)
    assert second.stable_history == ("v1", "v2") and second.previous_stable == "v1"
    canary = promoted(second, "a", "v3", CHANGE, canary_percent=20)
    assert (canary.stable, canary.canary, canary.canary_percent) == ("v2", "v3", 20)
    ended = rolled_back(canary, "a", CHANGE, to=None)  # a canary's rollback ends the canary
    assert (ended.stable, ended.canary, ended.previous_canary, ended.change) == ("v2", None, "v3", "rollback_canary")
    back = rolled_back(ended, "a", CHANGE, to=None)  # then back to the stable version before
    assert (back.stable, back.stable_history[-1], back.change) == ("v1", "v1", "rollback")
    assert rolled_back(back, "a", CHANGE, to=None).stable == "v2"  # the one before v1 in the history is v2
    assert rolled_back(back, "a", CHANGE, to="v2").stable == "v2"


@pytest.mark.parametrize(
    ("labels", "version", "percent", "says"),
    [
        (None, "v1", 10.0, "no stable version"),
        (Labels("a", "v1"), "v2", 0.0, "less than 100"),
        (Labels("a", "v1"), "v2", 100.0, "less than 100"),
        (Labels("a", "v1"), "v1", 10.0, "stable version already"),
    ],
)
def test_a_canary_that_cannot_be_is_refused(labels: Labels | None, version: str, percent: float, says: str) -> None:
    with pytest.raises(AgentConfigRefused, match=says):
        promoted(labels, "a", version, CHANGE, canary_percent=percent)


def test_a_rollback_with_nowhere_to_go_is_refused() -> None:
    with pytest.raises(AgentConfigRefused, match="nothing to roll back"):
        rolled_back(None, "a", CHANGE, to=None)
    with pytest.raises(AgentConfigRefused, match="its first"):
        rolled_back(Labels("a", "v1", stable_history=("v1",)), "a", CHANGE, to=None)


def test_fields_workers_read_at_start_up_are_fixed(agents: dict[str, Agent]) -> None:
    definition = agents["support_triage"].definition
    prompt = definition.model_copy(update={"prompt": definition.prompt.model_copy(update={"system": "Be brief."})})
    assert fixed_changes(definition, prompt) == []
    moved = definition.model_copy(update={"input_topic": "elsewhere", "budget": definition.budget.model_copy(
        update={"daily_usd": 5.0})})  # fmt: skip
    assert fixed_changes(definition, moved) == ["input_topic", "budget"]


def test_a_diff_names_the_sections_that_changed(agents: dict[str, Agent]) -> None:
    agent = agents["support_triage"]
    old = version_of(agent, parent=None, change=CHANGE)
    definition = agent.definition.model_copy(
        update={"prompt": agent.definition.prompt.model_copy(update={"system": "Be brief."})}
    )
    text = diff(old, dataclasses.replace(old, definition=definition, version_id="v2"))
    assert text.startswith("== prompt\n") and "+system: Be brief." in text.splitlines()
    assert "== model_chain" not in text and "== output_schema" not in text
    assert diff(old, old) == ""


def test_later_blocks_change_the_version_and_their_absence_keeps_the_digest_it_had(
    shipped_agents: dict[str, Agent],
) -> None:
    agent = shipped_agents["support_triage"]
    bare = agent.definition.model_copy(update={"evaluation": None, "tools": None, "context": None})
    document = bare.model_dump(mode="json")
    for later in ("evaluation", "tools", "context"):  # the definition as it was before these blocks existed
        del document[later]
    before = hashlib.sha256(orjson.dumps({"definition": document, "output": agent.output_schema.raw},
                                         option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]  # fmt: skip
    assert config_digest(bare, agent.output_schema.raw) == before
    assert agent.config_version != before  # the shipped file's tools and context count
    gated = bare.model_copy(update={"evaluation": EvaluationPolicy(min_agreement=0.8)})
    assert config_digest(gated, agent.output_schema.raw) != before
    assert "min_agreement: 0.8" in diff(version_of(agent, parent=None, change=CHANGE), dataclasses.replace(
        version_of(agent, parent=None, change=CHANGE), definition=gated, version_id="x"))  # fmt: skip
