"""The agent's Avro output schema, seen two ways.

``to_json_schema`` tells the model what shape to answer in (OpenAI ``response_format``).
``conform`` checks a parsed JSON answer against the Avro schema and turns it into an Avro-ready
value (ISO dates → ``date``, numbers → ``Decimal``), collecting every problem with its path so the
dead letter (and later the re-ask) can say exactly what was wrong.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

AvroType = Any  # a JSON-form Avro schema node: str | list | dict

_JSON_PRIMITIVES: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "null": {"type": "null"},
}


def to_json_schema(schema: AvroType) -> dict[str, Any]:
    if isinstance(schema, list):
        return {"anyOf": [to_json_schema(branch) for branch in schema]}
    if isinstance(schema, str):
        return dict(_JSON_PRIMITIVES.get(schema, {"type": "string"}))
    logical = schema.get("logicalType")
    if logical == "date":
        return {"type": "string", "format": "date"}
    if logical == "decimal":
        return {"type": "number"}
    kind = schema["type"]
    if kind == "record":
        properties = {f["name"]: _described(to_json_schema(f["type"]), f) for f in schema["fields"]}
        return {
            "type": "object",
            "properties": properties,
            "required": [f["name"] for f in schema["fields"]],
            "additionalProperties": False,
        }
    if kind == "enum":
        return {"type": "string", "enum": list(schema["symbols"])}
    if kind == "array":
        return {"type": "array", "items": to_json_schema(schema["items"])}
    if kind == "map":
        return {"type": "object", "additionalProperties": to_json_schema(schema["values"])}
    return to_json_schema(kind)


def _described(node: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    return {**node, "description": field["doc"]} if "doc" in field else node


class _Problems:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []


def conform(schema: AvroType, value: Any) -> tuple[Any, list[str], list[str]]:
    """Return (avro_value, errors, warnings). The value is only usable when errors is empty."""
    problems = _Problems()
    result = _conform(schema, value, "$", problems)
    return result, problems.errors, problems.warnings


def _conform(schema: AvroType, value: Any, path: str, problems: _Problems) -> Any:
    if isinstance(schema, list):
        return _conform_union(schema, value, path, problems)
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical == "date":
            return _conform_date(value, path, problems)
        if logical == "decimal":
            return _conform_decimal(schema, value, path, problems)
        kind = schema["type"]
        if kind == "record":
            return _conform_record(schema, value, path, problems)
        if kind == "enum":
            return _conform_enum(schema, value, path, problems)
        if kind == "array":
            return _conform_array(schema, value, path, problems)
        return _conform(kind, value, path, problems)
    return _conform_primitive(schema, value, path, problems)


def _conform_union(branches: list[AvroType], value: Any, path: str, problems: _Problems) -> Any:
    if value is None and "null" in branches:
        return None
    candidates = [b for b in branches if b != "null"]
    last_errors: list[str] = []
    for branch in candidates:
        trial = _Problems()
        result = _conform(branch, value, path, trial)
        if not trial.errors:
            problems.warnings.extend(trial.warnings)
            return result
        last_errors = trial.errors
    problems.errors.extend(last_errors or [f"{path}: no branch of the union accepts {value!r}"])
    return None


def _conform_record(schema: dict[str, Any], value: Any, path: str, problems: _Problems) -> Any:
    if not isinstance(value, dict):
        problems.errors.append(f"{path}: expected an object, got {_kind(value)}")
        return None
    known = {f["name"] for f in schema["fields"]}
    problems.warnings.extend(f"{path}.{name}: unexpected field ignored" for name in value if name not in known)
    out: dict[str, Any] = {}
    for field in schema["fields"]:
        name, field_path = field["name"], f"{path}.{field['name']}"
        if name in value:
            out[name] = _conform(field["type"], value[name], field_path, problems)
        elif "default" in field:
            out[name] = field["default"]
        elif _nullable(field["type"]):
            problems.warnings.append(f"{field_path}: missing, taken as null")
            out[name] = None
        else:
            problems.errors.append(f"{field_path}: required field is missing")
    return out


def _conform_enum(schema: dict[str, Any], value: Any, path: str, problems: _Problems) -> Any:
    symbols = schema["symbols"]
    if isinstance(value, str) and value in symbols:
        return value
    if isinstance(value, str) and value.strip().lower() in symbols:
        problems.warnings.append(f"{path}: {value!r} normalised to {value.strip().lower()!r}")
        return value.strip().lower()
    problems.errors.append(f"{path}: {value!r} is not one of {', '.join(symbols)}")
    return None


def _conform_array(schema: dict[str, Any], value: Any, path: str, problems: _Problems) -> Any:
    if not isinstance(value, list):
        problems.errors.append(f"{path}: expected an array, got {_kind(value)}")
        return None
    return [_conform(schema["items"], item, f"{path}[{i}]", problems) for i, item in enumerate(value)]


def _conform_date(value: Any, path: str, problems: _Problems) -> Any:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    problems.errors.append(f"{path}: expected an ISO date (YYYY-MM-DD), got {value!r}")
    return None


def _conform_decimal(schema: dict[str, Any], value: Any, path: str, problems: _Problems) -> Any:
    scale, precision = int(schema.get("scale", 0)), int(schema["precision"])
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidOperation
        number = Decimal(str(value).strip())
        quantized = number.quantize(Decimal(1).scaleb(-scale))
    except InvalidOperation:
        problems.errors.append(f"{path}: expected a decimal number, got {value!r}")
        return None
    if not quantized.is_finite() or len(quantized.as_tuple().digits) > precision:
        problems.errors.append(f"{path}: {value!r} does not fit decimal({precision},{scale})")
        return None
    if quantized != number:
        problems.warnings.append(f"{path}: {value!r} rounded to {scale} decimal places")
    return quantized


_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _conform_primitive(kind: str, value: Any, path: str, problems: _Problems) -> Any:
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind in _INT_RANGES and isinstance(value, int) and not isinstance(value, bool):
        low, high = _INT_RANGES[kind]
        if low <= value <= high:
            return value
        problems.errors.append(f"{path}: {value} is out of range for {kind}")
        return None
    if kind in ("float", "double") and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "null" and value is None:
        return None
    problems.errors.append(f"{path}: expected {kind}, got {_kind(value)} {_preview(value)}")
    return None


def _nullable(schema: AvroType) -> bool:
    return isinstance(schema, list) and "null" in schema


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
