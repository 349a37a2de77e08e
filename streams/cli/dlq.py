"""`keel dlq list|show|replay`: what on-call engineers do with dead letters.

Selection is pure (``select``); reading the dead-letter topics and re-publishing are the thin edges.
A replay sends the original key, value and headers back to the original input topic and partition,
with signed ``keel.replay`` headers (streams/contracts/control.py) asking for the pass after the dead letter's, and
keeps the event id: the worker then decides the event again, once, instead of re-emitting the recorded
dead letter. A replay record delivered again, or copied, re-emits what that pass decided.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from streams.apps.registry.client_mode import load_schemas
from streams.cli.watch import Observed, OutcomeWatcher
from streams.contracts.control import (
    CONTROL_HEADERS,
    H_REPLAY,
    H_REPLAY_CONFIG,
    H_REPLAY_OF,
    H_REPLAY_PASS,
    H_SIGNATURE,
    ControlKeys,
)
from streams.contracts.control_keys import load_control_keys
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import outcome_topic
from streams.core.errors import ConfigError
from streams.core.settings import Settings
from streams.kafka.agent_configs import read_config_log
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer


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


def replay_record(dead: dict[str, Any], keys: ControlKeys, *, config_version: str | None = None) -> OutRecord:
    """The original record again, in its partition, with its own control headers left out and signed
    replay headers added (``config_version``: the agent version to decide it). A dead letter written
    before passes were recorded on it replays as pass 1."""
    original = dead["original"]
    kept = tuple((h["key"], h["value"]) for h in original["headers"] if h["key"] not in CONTROL_HEADERS | {H_SIGNATURE})
    position = f"{original['topic']}/{original['partition']}/{original['offset']}"
    marks = [(H_REPLAY, b"1"), (H_REPLAY_OF, position.encode()), (H_REPLAY_PASS, str(replay_pass(dead)).encode())]
    if config_version is not None:
        marks.append((H_REPLAY_CONFIG, config_version.encode()))
    record = OutRecord(original["topic"], original["key"], original["value"], (*kept, *marks), original["partition"])
    return keys.sign(record)


def replay_pass(dead: dict[str, Any]) -> int:
    return int(dead.get("pass_number") or 0) + 1


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
    catalogue, _ = load_schemas(settings)
    watcher = OutcomeWatcher(
        client_config(settings), catalogue, {outcome_topic(settings, a, "dlq"): "dead_letter" for a in agents}
    )
    await watcher.start(from_beginning=True)
    found: list[Observed] = []
    try:
        while batch := await watcher.poll(timeout_s=1.0):
            found += batch
    finally:
        await watcher.stop()
    return [o.value for o in found]


async def replay(
    settings: Settings, dead_letters: list[dict[str, Any]], *, input_topics: set[str], config_version: str | None = None
) -> int:
    """Re-publish the originals; only to input topics of this deployment, never anywhere else. A dead
    letter whose original was cut to fit (``original_truncated``) is not replayed: its record would not
    be the original."""
    keys = load_control_keys(settings)
    records = [
        replay_record(d, keys, config_version=config_version)
        for d in dead_letters
        if d["original"]["topic"] in input_topics and not d.get("original_truncated")
    ]
    async with RecordProducer(client_config(settings)) as producer:
        await producer.send_all(records)
    return len(records)


def pinned_version(settings: Settings, agent: str | None, version: str) -> str:
    """The full id of ``agent``'s version ``version`` (or a prefix of it), from keel.agent-configs."""
    if agent is None:
        raise ConfigError("--config-version needs --agent: a version belongs to one agent")
    catalogue, _ = load_schemas(settings)
    log = asyncio.run(read_config_log(client_config(settings), catalogue, settings))
    return log.version(agent, version).version_id
