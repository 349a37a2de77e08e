"""What an evaluation runs on: request events, each with the output it should agree with.

From the audit trail (``--since``): each event's latest audit record, its input payload rebuilt as a
request (the audit keeps neither the source system nor the time the event occurred: the prompt sees
an empty source system and the time the worker received it), expected to agree with the recorded
output. From approved reviews (``--golden reviews``): the first decision on each item, when it
approved or edited it, expected to agree with the output the reviewer approved, run on the item's
original record. Golden files are read by the command (streams/cli/eval.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.domain import RequestEvent
from streams.core.errors import DecodeError, EvalInputError
from streams.core.review_item import Decision, ReviewItem
from streams.pipeline.decode import decode_request

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True, slots=True)
class EvalInput:
    event: RequestEvent
    expected: dict[str, Any] | None  # the output to agree with; None: nothing to agree with


def duration_ms(text: str) -> int:
    """``90s``, ``30m``, ``24h``, ``7d`` in milliseconds. Raises ``EvalInputError``."""
    match = _DURATION.match(text)
    if match is None:
        raise EvalInputError(f"--since takes a duration such as 30m, 24h or 7d, not {text!r}")
    return int(float(match.group(1)) * _UNIT_S[match.group(2)] * 1000)


def latest_last(inputs: list[EvalInput], limit: int | None) -> list[EvalInput]:
    return inputs[-limit:] if limit else inputs


def audit_inputs(
    records: Iterable[tuple[int, dict[str, Any]]], *, agent: str, since_ms: int, limit: int | None = None
) -> list[EvalInput]:
    """``records``: (timestamp, decoded audit value) in log order. Each event of ``agent`` audited
    since ``since_ms`` once, by its latest record (a reviewed event's carries the reviewer's output),
    the most recently audited last; ``limit``: the latest that many."""
    latest: dict[str, dict[str, Any]] = {}
    for timestamp_ms, value in records:
        if value.get("agent") != agent or timestamp_ms < since_ms or value.get("input_payload") is None:
            continue
        latest.pop(value["event_id"], None)  # insertion order: by the latest record
        latest[value["event_id"]] = value
    inputs = [entry for entry in (_from_audit(v) for v in latest.values()) if entry is not None]
    return latest_last(inputs, limit)


def _from_audit(value: dict[str, Any]) -> EvalInput | None:
    payload = _json_object(value["input_payload"])
    if payload is None:  # an audit record whose payload is not an object: no request could carry it
        return None
    received = value.get("received_at")
    event = RequestEvent(
        event_id=value["event_id"],
        occurred_at_ms=wire.epoch_ms(received) if received is not None else 0,
        tenant=value.get("tenant") or "",
        source_system="",
        business_key=value.get("business_key") or "",
        payload=payload,
        payload_json=value["input_payload"],
        trace_id=value.get("trace_id"),
    )
    return EvalInput(event, _json_object(value.get("output")))


def review_inputs(
    items: Iterable[ReviewItem],
    decisions: Iterable[Decision],
    catalogue: Catalogue,
    *,
    agent: str,
    max_event_bytes: int,
    limit: int | None = None,
) -> list[EvalInput]:
    """The items of ``agent`` whose first decision (in log order) approved or edited them, in the
    order decided, with the output the reviewer approved (an edit's, else the item's)."""
    by_id = {item.item_id: item for item in items if item.agent == agent}
    first: dict[str, Decision] = {}
    for decision in decisions:
        first.setdefault(decision.item_id, decision)
    inputs: list[EvalInput] = []
    for item_id, decision in first.items():
        item = by_id.get(item_id)
        if item is None or decision.action not in ("approve", "edit"):
            continue
        expected = _json_object(decision.output_json or item.output_json)
        if expected is not None:
            inputs.append(EvalInput(_item_event(catalogue, item, max_event_bytes), expected))
    return latest_last(inputs, limit)


def _item_event(catalogue: Catalogue, item: ReviewItem, max_event_bytes: int) -> RequestEvent:
    """The item's original request; an item that predates carrying it (or whose bytes no longer
    decode) is rebuilt from its fields."""
    if item.input_value:
        try:
            return decode_request(catalogue, item.input_value, max_event_bytes=max_event_bytes)
        except DecodeError:
            pass  # rebuilt below, from what the item says about the event
    payload = _json_object(item.request_payload) or {}
    return RequestEvent(
        item.event_id, item.occurred_at_ms, item.tenant, "", item.business_key, payload, item.request_payload,
        item.trace_id,
    )  # fmt: skip


def golden_input(document: object, *, line: int, event: RequestEvent | None) -> EvalInput:
    """A golden file's line ``{"event": {...}, "expected": {...}}``, its event already read (``event``,
    None when the line has no ``event`` object). Raises ``EvalInputError``."""
    expected = document.get("expected") if isinstance(document, dict) else None
    if event is None or not isinstance(expected, dict):
        raise EvalInputError(f'line {line}: a golden line is {{"event": {{...}}, "expected": {{...}}}}')
    return EvalInput(event, expected)


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
