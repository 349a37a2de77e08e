"""The provider simulator: protocol, schema-driven answers, directives, fault rates, stats and CLI."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from random import Random
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from connectors.simulator import outputs as sim_outputs
from connectors.simulator.cli import main
from connectors.simulator.server import (
    SimulatorConfig,
    choose_fault,
    draw_latency_ms,
    run_simulator,
    start_simulator,
)

REPO = Path(__file__).resolve().parents[4]

TICKET = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "outage", "other"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "escalate": {"type": "boolean"},
        "due": {"type": "string", "format": "date"},
        "summary": {"type": "string", "maxLength": 40},
        "assignee": {"type": ["string", "null"]},
        "customer": {"anyOf": [{"$ref": "#/$defs/customer"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 13},
    },
    "required": ["category", "priority", "confidence", "escalate", "due", "summary", "assignee", "customer", "tags"],
    "additionalProperties": False,
    "$defs": {
        "customer": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "tier": {"enum": ["gold", "silver"]}},
            "required": ["id", "tier"],
            "additionalProperties": False,
        }
    },
}


# --- a tiny JSON Schema checker for the subset the simulator claims ---------------------------------

_TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def problems(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, at: str = "$") -> list[str]:
    root = root if root is not None else schema
    if "$ref" in schema:
        node: Any = root
        for part in schema["$ref"][2:].split("/"):
            node = node[part]
        return problems(value, node, root, at)
    if "anyOf" in schema:
        matches_none = all(problems(value, branch, root, at) for branch in schema["anyOf"])
        return [f"{at}: matches no anyOf branch"] if matches_none else []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} not in enum"]
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if kinds and not any(_TYPE_CHECKS[k](value) for k in kinds):
        return [f"{at}: {value!r} is not {kinds}"]
    if isinstance(value, dict):
        return _object_problems(value, schema, root, at)
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in problems(item, schema.get("items", {}), root, f"{at}[{i}]")]
    if isinstance(value, str):
        return _string_problems(value, schema, at)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_problems(value, schema, at)
    return []


def _object_problems(value: dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], at: str) -> list[str]:
    props = schema.get("properties", {})
    found = [f"{at}: missing {k}" for k in schema.get("required", []) if k not in value]
    if schema.get("additionalProperties") is False:
        found += [f"{at}: extra {k}" for k in value if k not in props]
    for key, sub in props.items():
        if key in value:
            found += problems(value[key], sub, root, f"{at}.{key}")
    return found


def _string_problems(value: str, schema: Mapping[str, Any], at: str) -> list[str]:
    found = []
    if schema.get("format") == "date":
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            found.append(f"{at}: {value!r} is not a date")
    if len(value) > schema.get("maxLength", len(value)):
        found.append(f"{at}: too long")
    return found


def _number_problems(value: float, schema: Mapping[str, Any], at: str) -> list[str]:
    limits = {
        "minimum": (lambda v, b: v < b, "below minimum"),
        "maximum": (lambda v, b: v > b, "above maximum"),
        "exclusiveMinimum": (lambda v, b: v <= b, "not above exclusiveMinimum"),
        "exclusiveMaximum": (lambda v, b: v >= b, "not below exclusiveMaximum"),
    }
    return [f"{at}: {text}" for key, (broken, text) in limits.items() if key in schema and broken(value, schema[key])]


def test_the_checker_itself_finds_problems() -> None:
    good = {
        "category": "billing", "priority": 2, "confidence": 0.5, "escalate": False, "due": "2024-02-29",
        "summary": "ok", "assignee": None, "customer": {"id": "c1", "tier": "gold"}, "tags": [], "score": 11,
    }  # fmt: skip
    assert problems(good, TICKET) == []
    assert problems(good | {"priority": 9}, TICKET) == ["$.priority: above maximum"]
    assert problems(good | {"customer": {"id": "c1", "tier": "bronze"}}, TICKET) == [
        "$.customer: matches no anyOf branch"
    ]
    assert problems(good | {"due": "tomorrow", "extra": 1}, TICKET) == [
        "$: extra extra",
        "$.due: 'tomorrow' is not a date",
    ]
    assert problems({k: v for k, v in good.items() if k != "tags"}, TICKET) == ["$: missing tags"]
    assert problems(good | {"escalate": 1, "score": 13}, TICKET) == [
        "$.escalate: 1 is not ['boolean']",
        "$.score: not below exclusiveMaximum",
    ]


# --- the pure generator ---------------------------------------------------------------------------


def test_generated_values_validate_and_cover_both_sides_of_nullable_fields() -> None:
    values = [sim_outputs.generate(TICKET, Random(i), ("refund", "invoice", "late")) for i in range(300)]
    assert [p for v in values for p in problems(v, TICKET)] == []
    assert {v["assignee"] is None for v in values} == {True, False}
    assert {v["customer"] is None for v in values} == {True, False}
    assert {v["category"] for v in values} == {"billing", "outage", "other"}
    assert {len(v["tags"]) for v in values} == {1, 2, 3}
    assert {v["score"] for v in values} == {11, 12}
    assert all(set(v["summary"].split()) <= {"refund", "invoice", "late"} for v in values if len(v["summary"]) < 40)


def test_generator_handles_bounds_on_one_side_and_arrays_of_objects() -> None:
    schema = {
        "type": "object",
        "properties": {
            "below": {"type": "integer", "maximum": -50},
            "above": {"type": "number", "minimum": 1000},
            "when": {"type": "string", "format": "date-time"},
            "items": {
                "type": "array",
                "minItems": 2,
                "items": {"type": "object", "properties": {"n": {"type": "integer"}}},
            },
        },
    }
    for i in range(50):
        value = sim_outputs.generate(schema, Random(i), ("w",))
        assert problems(value, schema) == []
        assert dt.datetime.fromisoformat(value["when"])
        assert 2 <= len(value["items"]) <= 3


def test_violations_are_well_formed_json_that_break_the_schema() -> None:
    kinds = set()
    for i in range(200):
        rng = Random(i)
        value = sim_outputs.generate(TICKET, rng, ("a",))
        broken = sim_outputs.violate(TICKET, value, rng)
        found = problems(orjson.loads(orjson.dumps(broken)), TICKET)
        assert found, broken
        kinds |= {re.sub(r"\$[.\w]*: ", "", p).split()[0] for p in found}
    assert {"missing", "extra"} <= kinds
    assert any(k.startswith("'not-") for k in kinds)  # an enum miss


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["plain"], (None, None, None)),
        (["a [[sim:5xx]] b"], ("5xx", None, None)),
        (["[[sim:latency=250]]", "x [[sim:refusal]]"], ("refusal", 250.0, None)),
        (["[[sim:ok]] then [[sim:hang]]"], ("ok", None, None)),
        (["[[sim:outage=3]] [[sim:outage=5]]"], (None, None, 3)),
    ],
)
def test_parse_directives(texts: list[str], expected: tuple[str | None, float | None, int | None]) -> None:
    assert sim_outputs.parse_directives(texts) == expected


def test_parse_directives_rejects_unknown_kinds() -> None:
    with pytest.raises(sim_outputs.DirectiveError, match="sim:explode"):
        sim_outputs.parse_directives(["[[sim:explode]]"])


def test_choose_fault_stacks_probabilities_in_order() -> None:
    config = SimulatorConfig(p_5xx=0.1, p_429=0.2, p_auth=0.05)
    assert [choose_fault(config, d) for d in (0.0, 0.099, 0.101, 0.299, 0.301, 0.349, 0.351, 0.999)] == [
        "5xx", "5xx", "429", "429", "auth", "auth", "ok", "ok",
    ]  # fmt: skip


def test_latency_is_fixed_or_log_normal_around_the_median() -> None:
    assert draw_latency_ms(SimulatorConfig(latency_ms=120), Random(1)) == 120
    rng = Random(1)
    config = SimulatorConfig(latency_ms=200, latency_sigma=0.5)
    draws = sorted(draw_latency_ms(config, rng) for _ in range(4001))
    assert 185 < statistics.median(draws) < 215
    assert 300 < draws[int(0.8413 * len(draws))] < 360  # one sigma up: 200 * e**0.5 = 330


@pytest.mark.parametrize(
    "fields",
    [{"p_5xx": 0.6, "p_429": 0.5}, {"p_hang": 1.5}, {"latency_ms": -1}, {"hang_s": 301}, {"p_typo": 0.1}],
)
def test_invalid_configs_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig.model_validate(fields)


# --- the HTTP server ------------------------------------------------------------------------------


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    async with run_simulator(SimulatorConfig(seed=7, slow_s=0.3, retry_after_s=3)) as running:
        yield running.url


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def chat_body(text: str, schema: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "anything",
        "messages": [{"role": "system", "content": "Be exact."}, {"role": "user", "content": text}],
    }
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema, "strict": True},
        }
    return body | extra


async def post(http: httpx.AsyncClient, url: str, body: Any) -> httpx.Response:
    return await http.post(f"{url}/chat/completions", json=body)


async def test_completion_looks_like_openai_and_follows_the_schema(sim_url: str, http: httpx.AsyncClient) -> None:
    body = chat_body("Invoice INV-7 was charged twice, customer furious", TICKET)
    reply = (await post(http, sim_url, body)).json()
    assert reply["id"].startswith("chatcmpl-sim-")
    assert (reply["object"], reply["model"], reply["system_fingerprint"]) == (
        "chat.completion",
        "keel-simulator-1",
        "sim",
    )
    assert abs(reply["created"] - time.time()) < 5
    choice = reply["choices"][0]
    assert (choice["message"]["role"], choice["finish_reason"]) == ("assistant", "stop")
    content = choice["message"]["content"]
    assert problems(orjson.loads(content), TICKET) == []
    prompt_chars = len("Be exact.") + len(body["messages"][1]["content"])
    assert reply["usage"] == {
        "prompt_tokens": prompt_chars // 4 + 1,
        "completion_tokens": len(content) // 4 + 1,
        "total_tokens": prompt_chars // 4 + 1 + len(content) // 4 + 1,
    }


async def test_llama_cpp_json_object_schema_is_honoured(sim_url: str, http: httpx.AsyncClient) -> None:
    body = chat_body("classify") | {"response_format": {"type": "json_object", "schema": TICKET}}
    content = (await post(http, sim_url, body)).json()["choices"][0]["message"]["content"]
    assert problems(orjson.loads(content), TICKET) == []


async def test_without_schema_answers_with_prompt_words(sim_url: str, http: httpx.AsyncClient) -> None:
    reply = (await post(http, sim_url, {"messages": [{"role": "user", "content": "zebra quokka"}]})).json()
    answer = orjson.loads(reply["choices"][0]["message"]["content"])
    assert list(answer) == ["answer"]
    assert set(answer["answer"].split()) <= {"zebra", "quokka"}


async def test_answers_are_deterministic_for_a_seed(http: httpx.AsyncClient) -> None:
    body = chat_body("Router in building 4 keeps rebooting at night", TICKET)

    async def content(seed: int) -> str:
        async with run_simulator(SimulatorConfig(seed=seed)) as running:
            first = (await post(http, running.url, body)).json()["choices"][0]["message"]["content"]
            again = (await post(http, running.url, body)).json()["choices"][0]["message"]["content"]
            assert first == again
            return str(first)

    assert await content(7) == await content(7)
    assert await content(7) != await content(8)


async def test_other_prompts_get_other_answers(sim_url: str, http: httpx.AsyncClient) -> None:
    contents = set()
    for i in range(5):
        reply = (await post(http, sim_url, chat_body(f"ticket number {i}", TICKET))).json()
        contents.add(reply["choices"][0]["message"]["content"])
    assert len(contents) == 5


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("5xx", 500, None),
        ("auth", 401, "invalid_api_key"),
        ("429", 429, "rate_limit_exceeded"),
        ("context_length", 400, "context_length_exceeded"),
    ],
)
async def test_error_directives(
    sim_url: str, http: httpx.AsyncClient, kind: str, status: int, code: str | None
) -> None:
    response = await post(http, sim_url, chat_body(f"please [[sim:{kind}]]", TICKET))
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["type"]
    if kind == "429":
        assert response.headers["Retry-After"] == "3"
    if kind == "context_length":
        assert "maximum context length" in error["message"]


async def test_an_outage_fails_the_first_requests_of_a_prompt_then_answers(
    sim_url: str, http: httpx.AsyncClient
) -> None:
    flaky, other = chat_body("down for a while [[sim:outage=2]]", TICKET), chat_body("other [[sim:outage=1]]", TICKET)
    statuses = [(await post(http, sim_url, flaky)).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert [(await post(http, sim_url, other)).status_code for _ in range(2)] == [500, 200]


@pytest.mark.parametrize(
    ("kind", "finish_reason"),
    [
        ("ok", "stop"),
        ("malformed", "stop"),
        ("schema_violation", "stop"),
        ("truncated", "length"),
        ("refusal", "content_filter"),
    ],
)
async def test_content_directives(sim_url: str, http: httpx.AsyncClient, kind: str, finish_reason: str) -> None:
    response = await post(http, sim_url, chat_body(f"Outage in Paris [[sim:{kind}]]", TICKET))
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == finish_reason
    content = choice["message"]["content"]
    if kind == "refusal":
        assert content is None
        return
    if kind in {"malformed", "truncated"}:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(content)
        return
    found = problems(orjson.loads(content), TICKET)
    assert bool(found) == (kind == "schema_violation")


async def test_truncated_answer_is_a_prefix_of_the_full_answer(sim_url: str, http: httpx.AsyncClient) -> None:
    full = (await post(http, sim_url, chat_body("same words", TICKET))).json()["choices"][0]["message"]["content"]
    cut = (await post(http, sim_url, chat_body("same words", TICKET))).json()["choices"][0]["message"]["content"]
    assert cut == full  # same body, same answer
    body = chat_body("same words [[sim:truncated]]", TICKET)
    cut = (await post(http, sim_url, body)).json()["choices"][0]["message"]["content"]
    assert 0 < len(cut) < 0.8 * len(full) + 40


async def test_latency_directive_and_configured_latency(http: httpx.AsyncClient) -> None:
    async with run_simulator(SimulatorConfig(latency_ms=150)) as running:
        started = time.perf_counter()
        await post(http, running.url, chat_body("quick"))
        assert 0.15 <= time.perf_counter() - started < 1.0
        started = time.perf_counter()
        await post(http, running.url, chat_body("[[sim:latency=300]]"))
        assert 0.3 <= time.perf_counter() - started < 1.2


async def test_timeout_directive_answers_only_after_slow_s(sim_url: str, http: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    response = await post(http, sim_url, chat_body("[[sim:timeout]]", TICKET))
    assert time.perf_counter() - started >= 0.3
    assert problems(orjson.loads(response.json()["choices"][0]["message"]["content"]), TICKET) == []


async def test_hang_sends_headers_then_stalls_mid_body(sim_url: str) -> None:
    body = chat_body("[[sim:hang]]")
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(5, read=0.3)) as client,
        client.stream("POST", f"{sim_url}/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()


async def test_hang_is_bounded_by_hang_s(http: httpx.AsyncClient) -> None:
    async with run_simulator(SimulatorConfig(hang_s=0.3)) as running:
        started = time.perf_counter()
        with pytest.raises(httpx.RemoteProtocolError):
            await post(http, running.url, chat_body("[[sim:hang]]"))
        assert 0.3 <= time.perf_counter() - started < 2


async def test_stop_does_not_wait_for_hanging_requests(http: httpx.AsyncClient) -> None:
    running = await start_simulator(SimulatorConfig())
    pending = asyncio.create_task(post(http, running.url, chat_body("[[sim:hang]]")))
    while running.stats()["faults"]["hang"] == 0:
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    await running.stop()
    assert time.perf_counter() - started < 2
    with pytest.raises(httpx.TransportError):
        await pending


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not json"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "user"}]}', "content"),
        (orjson.dumps(chat_body("[[sim:explode]]")), "sim:explode"),
        (orjson.dumps(chat_body("x", {"type": "object", "properties": ["broken"]})), "schema"),
    ],
)
async def test_bad_requests_get_openai_style_400(
    sim_url: str, http: httpx.AsyncClient, body: bytes, needle: str
) -> None:
    response = await http.post(f"{sim_url}/chat/completions", content=body)
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"].lower()
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_models_health_stats_and_reset(sim_url: str, http: httpx.AsyncClient) -> None:
    root = sim_url.removesuffix("/v1")
    assert (await http.get(f"{root}/health")).json() == {"status": "ok"}
    models = (await http.get(f"{sim_url}/models")).json()
    assert [m["id"] for m in models["data"]] == ["keel-simulator-1"]
    for text in ("[[sim:5xx]]", "[[sim:5xx]]", "[[sim:refusal]]", "fine", "[[sim:bogus]]"):
        await post(http, sim_url, chat_body(text))
    stats = (await http.get(f"{root}/sim/stats")).json()
    assert stats["requests_total"] == 5
    assert {k: v for k, v in stats["faults"].items() if v} == {"5xx": 2, "refusal": 1, "ok": 1, "invalid_request": 1}
    reset = (await http.post(f"{root}/sim/reset")).json()
    assert reset["requests_total"] == 0
    assert set(reset["faults"].values()) == {0}


async def test_fault_rates_follow_probabilities_and_the_seed(http: httpx.AsyncClient) -> None:
    config = SimulatorConfig(seed=11, p_5xx=0.2, p_429=0.1, p_malformed=0.15, p_auth=0.05, p_truncated=0.1)
    n = 200

    async def run() -> tuple[dict[str, Any], dict[str, int]]:
        async with run_simulator(config) as running:
            responses = await asyncio.gather(*(post(http, running.url, chat_body(f"event {i}")) for i in range(n)))
            seen = {"5xx": 0, "429": 0, "auth": 0, "malformed": 0, "truncated": 0}
            for response in responses:
                if response.status_code != 200:
                    seen[{500: "5xx", 429: "429", 401: "auth"}[response.status_code]] += 1
                elif response.json()["choices"][0]["finish_reason"] == "length":
                    seen["truncated"] += 1
                elif not response.json()["choices"][0]["message"]["content"].endswith("}"):
                    seen["malformed"] += 1
            return running.stats(), seen

    stats, seen = await run()
    assert stats["requests_total"] == n
    assert {k: stats["faults"][k] for k in seen} == seen
    for kind, p in {"5xx": 0.2, "429": 0.1, "malformed": 0.15, "auth": 0.05, "truncated": 0.1}.items():
        spread = 3 * (n * p * (1 - p)) ** 0.5
        assert abs(seen[kind] - n * p) <= spread, (kind, seen[kind])
    assert stats["faults"]["ok"] == n - sum(seen.values())
    again, _ = await run()
    assert again == stats


# --- the command line -----------------------------------------------------------------------------


def read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout_s), "no output from the simulator"
    return process.stdout.readline()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_its_url_serves_and_exits_cleanly_on_signal(signum: signal.Signals) -> None:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.simulator", "--port", "0", "--p-5xx", "1.0", "--seed", "7"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(process, 15)
        match = re.fullmatch(r"keel-simulator listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        url = match.group(1)
        assert httpx.get(url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
        assert httpx.post(f"{url}/chat/completions", json=chat_body("x")).status_code == 500
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
        out, err = process.communicate()
        assert out == ""
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_rejects_invalid_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--p-5xx", "0.7", "--p-auth", "0.7"]) == 2
    assert "add up to 1.400" in capsys.readouterr().err
