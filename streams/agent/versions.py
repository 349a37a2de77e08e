"""Agent versions as data: immutable versions, the ``stable`` and ``canary`` labels that make them
live, and which version decides an event.

A version is an agent definition with its output schema, named by their digest (``config_version``).
Labels say which version is stable, which (if any) is the canary and for what share of events, and
the stable versions before it, so that a rollback knows where to go back to. Workers follow both on
``keel.agent-configs`` (streams/contracts/agent_configs.py) and switch without a restart; what a worker
cannot change without one (its topics, lanes, limits and budgets) stays as the agent's file declares.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import yaml

from streams.agent.definition import Agent, AgentDefinition, definition_document
from streams.core.errors import AgentConfigRefused

HISTORY = 50  # stable versions a label record remembers
# Fields a worker reads once, at start-up: a version that changes them needs the agent's file changed
# and the workers restarted (topics, lanes, limits and budgets are built from the file).
FIXED = ("name", "input_topic", "reliability.retry_delays_s", "concurrency", "rate_limit", "budget")


@dataclass(frozen=True, slots=True)
class AgentVersion:
    agent: str
    version_id: str
    definition: AgentDefinition
    output_schema: dict[str, Any]
    parent: str | None = None
    source: str = ""
    author: str = ""
    at_ms: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class Labels:
    agent: str
    stable: str
    canary: str | None = None
    canary_percent: float = 0.0
    stable_history: tuple[str, ...] = ()
    change: str = ""
    previous_stable: str | None = None
    previous_canary: str | None = None
    author: str = ""
    at_ms: int = 0
    message: str = ""


@dataclass(frozen=True, slots=True)
class LabelsChanged:
    """A labels change as the audit trail keeps it: every one, where compaction keeps only the latest
    labels. ``labels`` are the labels it made; their ``previous_*`` say what they replaced."""

    labels: Labels


@dataclass(frozen=True, slots=True)
class Change:
    """Who changes the labels, when and why."""

    author: str
    at_ms: int
    message: str = ""


def canary_bucket(event_id: str) -> float:
    """The event's place in [0, 100): the same for every delivery of the event, spread evenly."""
    digest = hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


def routed_version(labels: Labels, event_id: str) -> str:
    """The version that decides ``event_id``: the canary for its share of events, else the stable one."""
    if labels.canary is not None and canary_bucket(event_id) < labels.canary_percent:
        return labels.canary
    return labels.stable


def fixed_changes(old: AgentDefinition, new: AgentDefinition) -> list[str]:
    """The fields of ``FIXED`` that differ between ``old`` and ``new``."""
    before, after = definition_document(old), definition_document(new)
    return [path for path in FIXED if _at(before, path) != _at(after, path)]


def _at(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def promoted(
    labels: Labels | None, agent: str, version: str, change: Change, *, canary_percent: float | None
) -> Labels:
    """The labels once ``version`` is made stable (``canary_percent`` None) or the canary for that share
    of events (then the stable version stays)."""
    if canary_percent is not None:
        if labels is None:
            raise AgentConfigRefused(f"{agent} has no stable version yet: promote one before a canary")
        if not 0 < canary_percent < 100:
            raise AgentConfigRefused(f"a canary takes more than 0 and less than 100 percent, not {canary_percent}")
        if version == labels.stable:
            raise AgentConfigRefused(f"{version} is {agent}'s stable version already")
        return _changed(labels, change, "canary", canary=version, canary_percent=canary_percent)
    if labels is None:
        return Labels(agent, version, stable_history=(version,), change="promote", **_stamp(change))
    return _changed(labels, change, "promote", **_stable(labels, version))


def rolled_back(labels: Labels | None, agent: str, change: Change, *, to: str | None) -> Labels:
    """With a canary and no ``to``: the canary ends. Else the stable version goes back to ``to``, or to
    the stable version before the current one."""
    if labels is None:
        raise AgentConfigRefused(f"{agent} has no versions on the topic: there is nothing to roll back")
    if to is None and labels.canary is not None:
        return _changed(labels, change, "rollback_canary")
    if to is None:
        earlier = [v for v in labels.stable_history[:-1] if v != labels.stable]
        if not earlier:
            raise AgentConfigRefused(f"{agent}'s stable version {labels.stable} is its first: name one with --to")
        to = earlier[-1]
    if to == labels.stable and labels.canary is None:
        raise AgentConfigRefused(f"{to} is {agent}'s stable version already")
    return _changed(labels, change, "rollback", **_stable(labels, to))


def _stable(labels: Labels, version: str) -> dict[str, Any]:
    history = (*labels.stable_history, version)[-HISTORY:]
    return {"stable": version, "stable_history": history}


def _stamp(change: Change) -> dict[str, Any]:
    return {"author": change.author, "at_ms": change.at_ms, "message": change.message}


def _changed(labels: Labels, change: Change, kind: str, **fields: Any) -> Labels:
    """A canary ends with any change that does not set one."""
    updates: dict[str, Any] = {"canary": None, "canary_percent": 0.0, **fields}
    return replace(
        labels, change=kind, previous_stable=labels.stable, previous_canary=labels.canary, **_stamp(change), **updates
    )


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    text: str = field(repr=False)


def sections(version: AgentVersion) -> list[Section]:
    """What a reader compares between versions, each as YAML."""
    document = definition_document(version.definition)
    rest = {k: v for k, v in document.items() if k not in ("prompt", "model_chain", "handoff", "output_schema")}
    parts = {
        "prompt": document["prompt"],
        "model_chain": document["model_chain"],
        "output_schema": {"file": document["output_schema"], "schema": version.output_schema},
        "handoff": document["handoff"],
        "other fields": rest,
    }
    return [Section(name, yaml.safe_dump(value, sort_keys=True, allow_unicode=True)) for name, value in parts.items()]


def diff(old: AgentVersion, new: AgentVersion) -> str:
    """A unified diff per section that differs; empty when the versions are equal."""
    lines: list[str] = []
    for before, after in zip(sections(old), sections(new), strict=True):
        if before.text == after.text:
            continue
        lines.append(f"== {before.name}")
        lines += difflib.unified_diff(
            before.text.splitlines(), after.text.splitlines(), old.version_id, new.version_id, lineterm=""
        )
    return "\n".join(lines)


def definition_json(definition: AgentDefinition) -> str:
    return orjson.dumps(definition_document(definition), option=orjson.OPT_SORT_KEYS).decode()


def version_of(agent: Agent, *, parent: str | None, change: Change) -> AgentVersion:
    """``agent``, compiled from its file, as a version to publish."""
    return AgentVersion(
        agent.name, agent.config_version, agent.definition, agent.output_schema.raw, parent, str(agent.source_path),
        **_stamp(change),
    )  # fmt: skip
