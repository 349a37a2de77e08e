"""The pure pipeline, with a scripted stand-in for the model port."""

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pytest

from streams.agents import Agent
from streams.catalogue import Catalogue
from streams.domain import DeadLetter, Result, SourceRecord, Stage
from streams.errors import ProviderServerError
from streams.model import ModelRequest, ModelResponse
from streams.pipeline import Deps, process

ANSWER = {"category": "billing", "priority": "high", "summary": "Double charge.", "suggested_reply": "Sorry!"}


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def now_ms(self) -> int:
        return 1_800_000_000_000 + int(self.t * 1000)

    def monotonic(self) -> float:
        self.t += 0.01
        return self.t


@dataclass
class ScriptedModel:
    """Answers each call with the next scripted reply (a response or an error to raise)."""

    replies: list[ModelResponse | Exception]
    provider: str = "sim"
    requests: list[ModelRequest] = field(default_factory=list)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        return None


def reply(text: str, finish_reason: str = "stop") -> ModelResponse:
    return ModelResponse(text, "keel-simulator-1+sim", 120, 40, 0.25, finish_reason)


def _deps(catalogue: Catalogue, model: ScriptedModel) -> Deps:
    return Deps(catalogue=catalogue, models={"local": model}, clock=FakeClock(), max_event_bytes=64 * 1024)


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
    ("replies", "stage", "reason"),
    [
        ([reply("I think this is billing.")], Stage.PARSE, "output_not_json"),
        ([reply('{"category": "billing", "prio')], Stage.PARSE, "output_not_json"),
        ([reply('{"category": "billing", "prio', "length")], Stage.PARSE, "output_truncated"),
        ([reply('{"category": "money", "priority": "high"}')], Stage.VALIDATE, "output_schema_violation"),
        ([ProviderServerError("sim answered 500")], Stage.MODEL, "provider_5xx"),
    ],
)
async def test_model_failures_become_dead_letters_with_the_attempt_recorded(
    catalogue: Catalogue,
    agents: dict[str, Agent],
    make_source: Callable[..., SourceRecord],
    replies: list[ModelResponse | Exception],
    stage: Stage,
    reason: str,
) -> None:
    source = make_source()
    outcome = await process(source, agents["support_triage"], _deps(catalogue, ScriptedModel(replies)))
    assert isinstance(outcome, DeadLetter)
    assert (outcome.failure.stage, outcome.failure.reason) == (stage, reason)
    assert outcome.trace.source is source
    assert [a.outcome for a in outcome.trace.attempts] == [reason]


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
    assert [a.outcome for a in outcome.trace.attempts] == ["internal_error"]
