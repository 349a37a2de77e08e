"""The pure pipeline, with a scripted stand-in for the model port."""

from collections.abc import Callable

import orjson
import pytest
from fakes import ScriptedModel, make_deps, reply

from streams.agent.definition import Agent
from streams.core.catalogue import Catalogue
from streams.core.domain import DeadLetter, Result, SourceRecord, Stage
from streams.core.ports.model import ModelResponse
from streams.pipeline.deps import Deps
from streams.pipeline.process import process

ANSWER = {"category": "billing", "priority": "high", "summary": "Double charge.", "suggested_reply": "Sorry!"}


def _deps(catalogue: Catalogue, model: ScriptedModel) -> Deps:
    return make_deps(catalogue, {"local": model})


async def test_a_good_answer_becomes_a_result(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    model = ScriptedModel([reply(orjson.dumps(ANSWER).decode())])
    outcome = await process(make_source(), agents["support_triage"], _deps(catalogue, model))
    assert isinstance(outcome, Result)
    assert outcome.output["category"] == "billing" and outcome.output["confidence"] is None
    assert outcome.model_version == "keel-simulator-1+sim"
    assert outcome.route == "autonomous"
    [attempt] = outcome.trace.attempts
    assert (attempt.provider, attempt.model, attempt.outcome, attempt.tokens_in) == (
        "local",
        "smollm2-135m-instruct",
        "ok",
        120,
    )
    request = model.requests[0]
    assert request.response_schema == agents["support_triage"].response_schema
    assert "I was charged twice" in request.messages[1].content
    assert request.parameters["max_tokens"] == 384


@pytest.mark.parametrize(
    ("replies", "stage", "reason", "purposes"),
    [
        ([reply("I think this is billing.")] * 2, Stage.PARSE, "output_not_json", ["initial", "reask"]),
        ([reply('{"category": "billing", "prio', "length")] * 2, Stage.PARSE, "output_truncated", ["initial", "reask"]),
        (
            [reply('{"category": "money", "priority": "high"}')] * 2,
            Stage.VALIDATE,
            "output_schema_violation",
            ["initial", "reask"],
        ),
    ],
)
async def test_model_failures_become_dead_letters_with_every_attempt_recorded(
    catalogue: Catalogue,
    agents: dict[str, Agent],
    make_source: Callable[..., SourceRecord],
    replies: list[ModelResponse | Exception],
    stage: Stage,
    reason: str,
    purposes: list[str],
) -> None:
    source = make_source()
    outcome = await process(source, agents["support_triage"], _deps(catalogue, ScriptedModel(list(replies))))
    assert isinstance(outcome, DeadLetter)
    assert (outcome.failure.stage, outcome.failure.reason) == (stage, reason)
    assert outcome.trace.source is source
    assert [a.outcome for a in outcome.trace.attempts] == [reason] * len(purposes)
    assert [a.purpose for a in outcome.trace.attempts] == purposes


async def test_undecodable_bytes_never_reach_the_model(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    model = ScriptedModel([])
    outcome = await process(make_source(b"\x01garbage", offset=42), agents["support_triage"], _deps(catalogue, model))
    assert isinstance(outcome, DeadLetter)
    assert outcome.failure.stage is Stage.DECODE and outcome.failure.reason == "wrong_magic_byte"
    assert outcome.trace.event_id == "undecodable:support.tickets/2/42"
    assert outcome.trace.attempts == () and model.requests == []


async def test_missing_prompt_field_is_a_prompt_dead_letter(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], make_event
) -> None:
    event = make_event(payload={"ticket_id": "T-9", "subject": "no body here"})
    outcome = await process(make_source(event=event), agents["support_triage"], _deps(catalogue, ScriptedModel([])))
    assert isinstance(outcome, DeadLetter)
    assert (outcome.failure.stage, outcome.failure.reason) == (Stage.PROMPT, "prompt_field_missing")
    assert "payload.body" in outcome.failure.message


async def test_a_bug_is_an_internal_dead_letter_not_a_crash(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord]
) -> None:
    model = ScriptedModel([ZeroDivisionError("boom")])
    outcome = await process(make_source(), agents["support_triage"], _deps(catalogue, model))
    assert isinstance(outcome, DeadLetter)
    assert outcome.failure.stage is Stage.INTERNAL and outcome.failure.message == "ZeroDivisionError: boom"
    assert [a.outcome for a in outcome.trace.attempts] == ["interrupted"]
