"""The pipeline routes a validated output by the agent's handoff policy, and re-runs without a model."""

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fakes import ScriptedModel, make_deps, reply

from streams.agent.definition import Agent
from streams.agent.handoff_policy import HandoffPolicy, HandoffRule
from streams.core.catalogue import Catalogue
from streams.core.domain import DeadLetter, Result, Review, SourceRecord, Stage
from streams.core.errors import ModelRefused
from streams.pipeline.process import process

ANSWER = {"category": "billing", "priority": "high", "summary": "Double charge.", "suggested_reply": "Sorry!"}
FIRST = "local/smollm2-135m-instruct"


def _agent(base: Agent, *, rules: tuple[HandoffRule, ...] = (), backup: bool = False, **changes: Any) -> Agent:
    chain = list(base.definition.model_chain)
    if backup:
        chain.append(chain[0].model_copy(update={"model": "backup"}))
    update: dict[str, Any] = {"handoff": HandoffPolicy(rules=rules), "model_chain": chain, **changes}
    return dataclasses.replace(base, definition=base.definition.model_copy(update=update))


def _answer(**change: Any) -> str:
    return orjson.dumps({**ANSWER, **change}).decode()


async def test_a_matching_review_rule_holds_the_output_for_a_human(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    agent = _agent(agents["support_triage"], rules=(HandoffRule(name="unsure", route="review", confidence_below=0.7),))
    model = ScriptedModel([reply(_answer(confidence=0.4), model_version="v-7")])
    outcome = await process(make_source(), agent, make_deps(catalogue, {"local": model}))
    assert isinstance(outcome, Review)
    assert (outcome.route, outcome.rule, outcome.reason) == ("review", "unsure", "handoff_rule")
    assert outcome.message == "confidence 0.4 is below 0.7"
    assert orjson.loads(outcome.output_json or "")["confidence"] == 0.4
    assert (outcome.output_model, outcome.output_model_version) == (FIRST, "v-7")
    assert [role for role, _ in outcome.prompt] == ["system", "user"]
    assert "I was charged twice" in outcome.prompt[1][1]


async def test_a_flagged_output_is_a_result_that_also_carries_its_review_item(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    rule = HandoffRule(name="money", route="flag", field="category", in_=("billing", "cancellation"))
    model = ScriptedModel([reply(_answer(priority="HIGH"))])  # accepted case-insensitively, with a warning
    outcome = await process(
        make_source(), _agent(agents["support_triage"], rules=(rule,)), make_deps(catalogue, {"local": model})
    )
    assert isinstance(outcome, Result)
    assert (outcome.route, outcome.rule, outcome.output["category"]) == ("flag", "money", "billing")
    flagged = outcome.flagged
    assert flagged is not None and (flagged.route, flagged.rule, flagged.reason) == ("flag", "money", "handoff_rule")
    assert flagged.output_json == outcome.output_json and flagged.trace is outcome.trace
    assert flagged.warnings == outcome.warnings and outcome.warnings


async def test_an_unmatched_output_stays_autonomous(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    rule = HandoffRule(name="money", route="flag", field="category", in_=("cancellation",))
    model = ScriptedModel([reply(_answer())])
    outcome = await process(
        make_source(), _agent(agents["support_triage"], rules=(rule,)), make_deps(catalogue, {"local": model})
    )
    assert isinstance(outcome, Result) and (outcome.route, outcome.rule, outcome.flagged) == ("autonomous", None, None)


async def test_an_output_of_a_fallback_model_can_be_sent_to_review(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    rule = HandoffRule(name="fallback", route="review", when="fallback_model")
    agent = _agent(agents["support_triage"], rules=(rule,), backup=True)
    model = ScriptedModel([ModelRefused("no"), reply(_answer(), model_version="b-1")])
    outcome = await process(make_source(), agent, make_deps(catalogue, {"local": model}))
    assert isinstance(outcome, Review) and (outcome.rule, outcome.output_model) == ("fallback", "local/backup")
    assert [r.model for r in model.requests] == ["smollm2-135m-instruct", "backup"]


async def test_a_review_by_the_reliability_policy_has_no_rule(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    base = agents["support_triage"]
    reliability = base.definition.reliability.model_copy(update={"on_refusal": "review"})
    agent = _agent(base, rules=(HandoffRule(name="all", route="flag", confidence_below=1),), reliability=reliability)
    outcome = await process(make_source(), agent, make_deps(catalogue, {"local": ScriptedModel([ModelRefused("no")])}))
    assert isinstance(outcome, Review)
    assert (outcome.route, outcome.rule, outcome.reason, outcome.output_json) == ("review", None, "model_refused", None)


async def test_a_rerun_leaves_the_rejected_model_out(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    agent = _agent(agents["support_triage"], backup=True)
    model = ScriptedModel([reply(_answer())])
    outcome = await process(
        make_source(), agent, make_deps(catalogue, {"local": model}), skip_models=(FIRST,), pass_number=1
    )
    assert isinstance(outcome, Result) and outcome.trace.pass_number == 1
    assert [r.model for r in model.requests] == ["backup"]
    assert [(a.model, a.purpose) for a in outcome.trace.attempts] == [("backup", "initial")]


async def test_a_rerun_with_no_other_model_is_a_dead_letter_that_says_so(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    model = ScriptedModel([])
    outcome = await process(
        make_source(),
        _agent(agents["support_triage"], backup=True),
        make_deps(catalogue, {"local": model}),
        skip_models=(FIRST, "local/backup"),
    )
    assert isinstance(outcome, DeadLetter) and not model.requests
    assert (outcome.failure.stage, outcome.failure.reason) == (Stage.MODEL, "no_model_left_for_rerun")
    assert f"{FIRST}, local/backup" in outcome.failure.message and outcome.trace.event is not None


@pytest.mark.parametrize("policy", ["alert", "review", "dead_letter"])
async def test_a_model_version_other_than_the_pinned_one_goes_as_the_chain_entry_declares(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], policy: str
) -> None:
    base = agents["support_triage"]
    pinned = [base.definition.model_chain[0].model_copy(update={"version": "v-7", "on_version_change": policy})]
    agent = _agent(base, model_chain=pinned)
    same = await process(
        make_source(),
        agent,
        make_deps(catalogue, {"local": ScriptedModel([reply(_answer(), model_version="v-7+fp_1")])}),
    )
    assert isinstance(same, Result) and not any(w.startswith("model_version_changed") for w in same.warnings)
    model = ScriptedModel([reply(_answer(), model_version="v-8")])
    outcome = await process(make_source(), agent, make_deps(catalogue, {"local": model}))
    said = f"model_version_changed: {FIRST} reported 'v-8', pinned 'v-7'"
    if policy == "alert":
        assert isinstance(outcome, Result) and said in outcome.warnings
    elif policy == "review":
        assert isinstance(outcome, Review) and (outcome.reason, outcome.message) == ("model_version_changed", said)
    else:
        assert isinstance(outcome, DeadLetter)
        assert (outcome.failure.stage, outcome.failure.reason, outcome.failure.message) == (
            Stage.MODEL,
            "model_version_changed",
            said,
        )
