"""What the provider simulator says: directives, schema-driven answers and their deliberate faults.

Pure functions over plain values; ``connectors.simulator.server`` owns the HTTP server around them. Every
value comes from the ``random.Random`` the caller passes, so an answer is reproducible from the seed
and the request body.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from random import Random
from typing import Any, NamedTuple

import orjson

from connectors.simulator.chat import SimToolCall, without_tool_directives

FAULT_KINDS = (
    "5xx",
    "timeout",
    "hang",
    "429",
    "malformed",
    "schema_violation",
    "truncated",
    "auth",
    "context_length",
    "refusal",
    "ok",
)

# The answer shape when a request asks for no schema.
ANSWER_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}

_DIRECTIVE = re.compile(r"\[\[sim:([A-Za-z0-9_]+)(?:=([0-9]+))?\]\]")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
_FALLBACK_WORDS = ("steady", "stream", "record", "answer", "partition", "offset", "broker", "event")
_MAX_DEPTH = 12
_NULL_SHARE = 0.2  # how often a nullable field is null


class DirectiveError(ValueError):
    """A ``[[sim:...]]`` marker names no known directive."""


class Directives(NamedTuple):
    fault: str | None  # [[sim:KIND]]
    latency_ms: float | None  # [[sim:latency=MS]]
    outage: int | None  # [[sim:outage=N]]: the first N requests with this prompt get a 5xx


def parse_directives(texts: Sequence[str]) -> Directives:
    """The directives forced by ``[[sim:...]]`` markers; the first of each kind wins."""
    fault: str | None = None
    latency_ms: float | None = None
    outage: int | None = None
    for text in texts:
        for name, number in _DIRECTIVE.findall(text):
            if name == "latency" and number:
                latency_ms = latency_ms if latency_ms is not None else float(number)
            elif name == "outage" and number:
                outage = outage if outage is not None else int(number)
            elif name in FAULT_KINDS and not number:
                fault = fault or name
            else:
                raise DirectiveError(f"unknown simulator directive [[sim:{name}{'=' + number if number else ''}]]")
    return Directives(fault, latency_ms, outage)


def schema_of(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON schema a chat request asks for: OpenAI ``json_schema`` or llama.cpp ``json_object``."""
    response_format = body.get("response_format")
    if not isinstance(response_format, Mapping):
        return None
    json_schema = response_format.get("json_schema")
    schema = json_schema.get("schema") if isinstance(json_schema, Mapping) else response_format.get("schema")
    return schema if isinstance(schema, Mapping) else None


def request_rng(seed: int, body: Mapping[str, Any]) -> Random:
    """A generator derived from the seed and what the request asks (messages and response format)."""
    material = orjson.dumps([seed, body.get("messages"), body.get("response_format")], option=orjson.OPT_SORT_KEYS)
    return Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))  # noqa: S311 - simulated text


def prompt_words(texts: Sequence[str]) -> tuple[str, ...]:
    words = tuple(w.lower() for t in texts for w in _WORD.findall(_DIRECTIVE.sub(" ", without_tool_directives(t))))
    return words or _FALLBACK_WORDS


# --- generating a valid value --------------------------------------------------------------------


def generate(schema: Mapping[str, Any], rng: Random, words: Sequence[str]) -> Any:
    """A plausible value that validates against ``schema`` (the subset structured outputs use)."""
    return _generate(schema, rng, words, schema, 0)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}


def _generate(schema: Mapping[str, Any], rng: Random, words: Sequence[str], root: Mapping[str, Any], depth: int) -> Any:
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list) and branches:
        return _generate(_pick_branch(branches, rng, root), rng, words, root, depth + 1)
    kind = _pick_type(schema, rng)
    if kind == "null" or depth > _MAX_DEPTH:
        return None
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _generate(v, rng, words, root, depth + 1) for k, v in props.items()}
    if kind == "array":
        fewest, most = int(schema.get("minItems", 1)), int(schema.get("maxItems", 3))
        count = rng.randint(fewest, max(fewest, min(most, 3)))
        return [_generate(schema.get("items", {}), rng, words, root, depth + 1) for _ in range(count)]
    if kind == "integer":
        low, high = _bounds(schema, 0, 100)
        return rng.randint(math.ceil(low), max(math.ceil(low), math.floor(high)))
    if kind == "number":
        low, high = _bounds(schema, 0.0, 100.0)
        return min(high, max(low, round(rng.uniform(low, high), 2)))
    if kind == "boolean":
        return rng.random() < 0.5
    return _string(schema, rng, words)


def _pick_branch(branches: list[Any], rng: Random, root: Mapping[str, Any]) -> Mapping[str, Any]:
    real = [b for b in branches if isinstance(b, Mapping) and _resolve(b, root).get("type") != "null"]
    if real and (len(real) == len(branches) or rng.random() >= _NULL_SHARE):
        return rng.choice(real)
    return {"type": "null"}


def _pick_type(schema: Mapping[str, Any], rng: Random) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        real = [k for k in kind if k != "null"]
        if not real or ("null" in kind and rng.random() < _NULL_SHARE):
            return "null"
        return str(rng.choice(real))
    if isinstance(kind, str):
        return kind
    return "object" if "properties" in schema else "string"


def _bounds(schema: Mapping[str, Any], low: float, high: float) -> tuple[float, float]:
    """The inclusive range to draw from; exclusive bounds are kept one unit inside."""
    has_low = "minimum" in schema or "exclusiveMinimum" in schema
    if "minimum" in schema:
        low = float(schema["minimum"])
    elif "exclusiveMinimum" in schema:
        low = float(schema["exclusiveMinimum"]) + 1
    if "maximum" in schema:
        high = float(schema["maximum"])
    elif "exclusiveMaximum" in schema:
        high = float(schema["exclusiveMaximum"]) - 1
    if high < low:
        low, high = (low, low) if has_low else (high - 100, high)
    return low, high


def _string(schema: Mapping[str, Any], rng: Random, words: Sequence[str]) -> str:
    fmt = schema.get("format")
    day = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 3650))
    if fmt == "date":
        return day.isoformat()
    if fmt == "date-time":
        return f"{day.isoformat()}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
    min_len, max_len = int(schema.get("minLength", 0)), schema.get("maxLength")
    text = text.ljust(min_len, "x")
    return text[: int(max_len)] if isinstance(max_len, int) else text


# --- deliberate faults ---------------------------------------------------------------------------


def violate(schema: Mapping[str, Any], value: Any, rng: Random) -> Any:
    """Well-formed JSON that breaks ``schema``: a dropped required property, an enum miss, a wrong type."""
    props = schema.get("properties", {})
    if not isinstance(value, dict):
        return next(iter(_wrong_type_values(_types(schema)) or [{"unexpected": "shape"}]))
    choices: list[tuple[str, str]] = [("drop", k) for k in schema.get("required", []) if k in value]
    choices += [("enum", k) for k, p in props.items() if k in value and isinstance(p.get("enum"), list)]
    choices += [("type", k) for k, p in props.items() if k in value and _wrong_type_values(_types(p))]
    if schema.get("additionalProperties") is False:
        choices.append(("extra", "_unexpected"))
    if not choices:
        return ["not", "an", "object"]
    action, key = rng.choice(choices)
    broken = dict(value)
    if action == "drop":
        del broken[key]
    elif action == "enum":
        broken[key] = "not-" + "-".join(str(v) for v in props[key]["enum"])
    elif action == "type":
        broken[key] = rng.choice(_wrong_type_values(_types(props[key])))
    else:
        broken[key] = "not allowed"
    return broken


def _types(prop: Mapping[str, Any]) -> set[str]:
    """The JSON types ``prop`` admits; empty when it admits any type."""
    kind = prop.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    branches = prop.get("anyOf")
    if isinstance(branches, list) and branches:
        per_branch = [_types(b) if isinstance(b, Mapping) else set() for b in branches]
        return set().union(*per_branch) if all(per_branch) else set()
    return set()


def _wrong_type_values(allowed: set[str]) -> list[Any]:
    """Values of a JSON type outside ``allowed`` (none when ``allowed`` is empty, i.e. any type)."""
    if not allowed:
        return []
    candidates: tuple[tuple[set[str], Any], ...] = (
        ({"object"}, {"unexpected": True}),
        ({"array"}, ["unexpected"]),
        ({"string"}, "unexpected"),
        ({"integer", "number"}, 7),
        ({"boolean"}, True),
        ({"null"}, None),
    )
    return [value for kinds, value in candidates if not kinds & allowed]


def malformed(text: str, rng: Random) -> str:
    """Text a sloppy model produces: JSON wrapped in or followed by prose, so it does not parse."""
    variants = (
        f"{text}\n\nI hope this helps! Let me know if you need anything else.",
        f"Sure! Here is the JSON you asked for:\n```json\n{text}\n```",
        f"{text[: max(1, len(text) // 2)]} ... and the rest is left as an exercise.",
    )
    return rng.choice(variants)


def truncate(text: str, rng: Random) -> str:
    """The text cut in the middle, as when a model stops on ``max_tokens``."""
    if len(text) < 2:
        return text[:0]
    return text[: rng.randint(max(1, len(text) // 3), max(1, 2 * len(text) // 3))]


# --- wire bodies ---------------------------------------------------------------------------------


def completion_body(
    *,
    completion_id: str,
    model: str,
    content: str | None,
    finish_reason: str,
    prompt_chars: int,
    created: int,
    tool_call: SimToolCall | None = None,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object (asking for ``tool_call`` when finish_reason says so)."""
    prompt_tokens = prompt_tokens_of(prompt_chars)
    completion_tokens = len(content or "") // 4 + 1
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_call is not None and finish_reason == "tool_calls":
        function = {"name": tool_call.name, "arguments": tool_call.arguments}
        message["tool_calls"] = [{"id": tool_call.call_id, "type": "function", "function": function}]
        completion_tokens += len(tool_call.arguments) // 4
    return {
        "id": f"chatcmpl-sim-{completion_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": "sim",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(message: str, *, error_type: str, code: str | None) -> dict[str, Any]:
    """An OpenAI error object."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def prompt_tokens_of(prompt_chars: int) -> int:
    """The prompt tokens the simulator reports (and counts against its tokens-per-minute limits)."""
    return prompt_chars // 4 + 1
