"""Parse step: the model's text → a JSON object, then → a value valid for the agent's output schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streams.agent.output_schema import AvroType, conform
from streams.core.errors import OutputNotJson, OutputSchemaViolation, OutputTruncated

_FENCE = "```"


@dataclass(frozen=True, slots=True)
class ValidatedOutput:
    value: dict[str, Any]  # Avro-ready
    json: str  # the model's answer, normalised to compact JSON (for the audit record)
    warnings: tuple[str, ...]


def parse_json_object(text: str, *, finish_reason: str) -> dict[str, Any]:
    candidate = _strip_fences(text.strip())
    try:
        value = orjson.loads(candidate)
    except orjson.JSONDecodeError as exc:
        if finish_reason == "length":
            raise OutputTruncated(
                f"the model stopped at its token limit mid-answer ({len(text)} chars): {_preview(text)}"
            ) from exc
        raise OutputNotJson(f"answer is not JSON ({exc}): {_preview(text)}") from exc
    if not isinstance(value, dict):
        raise OutputNotJson(f"answer is JSON but not an object: {_preview(text)}")
    return value


def validate_output(schema: AvroType, value: dict[str, Any]) -> ValidatedOutput:
    conformed, errors, warnings = conform(schema, value)
    if errors:
        raise OutputSchemaViolation(errors)
    return ValidatedOutput(conformed, orjson.dumps(value).decode(), tuple(warnings))


def _strip_fences(text: str) -> str:
    # Chat models like to wrap JSON in ```json ... ``` even when asked not to.
    if text.startswith(_FENCE):
        first_newline = text.find("\n")
        text = text[first_newline + 1 :] if first_newline != -1 else text[len(_FENCE) :]
        if text.rstrip().endswith(_FENCE):
            text = text.rstrip()[: -len(_FENCE)]
    return text.strip()


def _preview(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")
