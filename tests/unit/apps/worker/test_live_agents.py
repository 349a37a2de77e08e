"""The version a worker gives each event, and the versions it refuses to run."""

from __future__ import annotations

import dataclasses

import pytest

from streams.agent.definition import Agent
from streams.agent.versions import AgentVersion, Change, Labels, version_of
from streams.apps.worker.live_agents import LiveAgents
from streams.core.catalogue import Catalogue
from streams.core.errors import AgentConfigRefused

CHANGE = Change("ana", 1_000)


def changed(agent: Agent, **updates: object) -> AgentVersion:
    """A version of ``agent`` with these definition fields (its id: anything unique; the contract checks digests)."""
    definition = agent.definition.model_copy(update=updates)
    return dataclasses.replace(version_of(agent, parent=None, change=CHANGE), definition=definition,
                               version_id=f"v-{len(str(updates))}-{sorted(updates)}")  # fmt: skip


def live(agents: dict[str, Agent], catalogue: Catalogue) -> LiveAgents:
    return LiveAgents([agents["support_triage"]], catalogue, providers={"local": object()})


def test_with_no_labels_the_file_decides(agents: dict[str, Agent], catalogue: Catalogue) -> None:
    assert live(agents, catalogue).pick("support_triage", "e1") is agents["support_triage"]


def test_labels_switch_the_version_and_a_canary_takes_its_share(agents: dict[str, Agent], catalogue: Catalogue) -> None:
    agent, running = agents["support_triage"], live(agents, catalogue)
    prompt = agent.definition.prompt.model_copy(update={"system": "Be brief."})
    first, second = version_of(agent, parent=None, change=CHANGE), changed(agent, prompt=prompt)
    for entry in (first, second, Labels(agent.name, first.version_id, canary=second.version_id, canary_percent=30)):
        running.take(entry)
    picked = [running.pick(agent.name, f"e{n}") for n in range(1_000)]
    canary = [a for a in picked if a.definition.prompt.system == "Be brief."]
    assert 200 < len(canary) < 400
    assert {a.config_version for a in picked} == {first.version_id, canary[0].config_version}
    running.take(Labels(agent.name, second.version_id))
    assert running.pick(agent.name, "e1").definition.prompt.system == "Be brief."


@pytest.mark.parametrize(
    ("update", "says"),
    [({"input_topic": "other.topic"}, "input_topic"), ({"model_chain": "hosted"}, "not configured here")],
)
def test_a_version_this_worker_cannot_run_is_refused_and_the_old_one_stays(
    agents: dict[str, Agent], catalogue: Catalogue, update: dict[str, object], says: str
) -> None:
    agent, running = agents["support_triage"], live(agents, catalogue)
    first = version_of(agent, parent=None, change=CHANGE)
    if update.get("model_chain") == "hosted":
        update = {"model_chain": [s.model_copy(update={"provider": "hosted"}) for s in agent.definition.model_chain]}
    bad = changed(agent, **update)
    running.take(first)
    running.take(bad)
    running.take(Labels(agent.name, first.version_id))
    with pytest.raises(AgentConfigRefused, match=says):
        running.take(Labels(agent.name, bad.version_id))
    assert running.pick(agent.name, "e1").config_version == first.version_id
    assert running.labels(agent.name) == Labels(agent.name, first.version_id)
