"""`keel dlq list|show|replay`: what on-call engineers do with dead letters.

Selection is pure (``select``); reading the dead-letter topics and re-publishing are the thin edges.
A replay sends the original key, value and headers back to the original input topic, adds
``keel.replay`` headers, and keeps the event id: the worker then decides the event again instead of
re-emitting the recorded dead letter.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from streams.catalogue import load_catalogue
from streams.emit import H_REPLAY, H_REPLAY_OF, OutRecord
from streams.producer import RecordProducer
from streams.settings import Settings
from streams.topics import outcome_topic
from streams.watch import Observed, OutcomeWatcher


@dataclass(frozen=True, slots=True)
class Selection:
    agent: str | None = None
    reason: str | None = None
    since: datetime | None = None
    event_ids: frozenset[str] = frozenset()


def select(dead_letters: Iterable[dict[str, Any]], selection: Selection) -> list[dict[str, Any]]:
    """The dead letters that match every given criterion, oldest first."""
    chosen = [
        d
        for d in dead_letters
        if (selection.agent is None or d["agent"] == selection.agent)
        and (selection.reason is None or d["reason"] == selection.reason)
        and (selection.since is None or d["failed_at"] >= selection.since)
        and (not selection.event_ids or d["event_id"] in selection.event_ids)
    ]
    return sorted(chosen, key=lambda d: d["failed_at"])


def parse_since(text: str | None, *, now: datetime) -> datetime | None:
    """``30m``, ``2h``, ``7d`` ago, or an ISO-8601 time."""
    if not text:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1] in units and text[:-1].isdigit():
        return now - timedelta(**{units[text[-1]]: int(text[:-1])})
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def replay_headers(dead: dict[str, Any]) -> list[tuple[str, bytes]]:
    original = [(h["key"], h["value"] or b"") for h in dead["original"]["headers"] if not h["key"].startswith(H_REPLAY)]
    position = f"{dead['original']['topic']}/{dead['original']['partition']}/{dead['original']['offset']}"
    return [*original, (H_REPLAY, b"1"), (H_REPLAY_OF, position.encode())]


def describe(dead: dict[str, Any]) -> str:
    when = dead["failed_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    message = " ".join(dead["message"].split())
    message = message if len(message) <= 80 else message[:79] + "…"
    return f"{when}  {dead['agent']:<20} {dead['event_id']:<38} {dead['stage']:<9} {dead['reason']:<26} {message}"


def as_json(dead: dict[str, Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, bytes):
            try:
                return value.decode()
            except UnicodeDecodeError:
                return "base64:" + base64.b64encode(value).decode()
        return str(value)

    return orjson.dumps(dead, default=default, option=orjson.OPT_INDENT_2).decode()


async def read_dead_letters(settings: Settings, agents: list[str]) -> list[dict[str, Any]]:
    catalogue = load_catalogue(settings.schemas_dir)
    watcher = OutcomeWatcher(
        settings.bootstrap_servers, catalogue, {outcome_topic(settings, a, "dlq"): "dead_letter" for a in agents}
    )
    await watcher.start(from_beginning=True)
    found: list[Observed] = []
    try:
        while batch := await watcher.poll(timeout_s=1.0):
            found += batch
    finally:
        await watcher.stop()
    return [o.value for o in found]


async def replay(settings: Settings, dead_letters: list[dict[str, Any]], *, input_topics: set[str]) -> int:
    """Re-publish the originals; only to input topics of this deployment, never anywhere else."""
    records = [
        OutRecord(d["original"]["topic"], d["original"]["key"], d["original"]["value"], tuple(replay_headers(d)))
        for d in dead_letters
        if d["original"]["topic"] in input_topics
    ]
    async with RecordProducer(settings.bootstrap_servers) as producer:
        await producer.send_all(records)
    return len(records)
