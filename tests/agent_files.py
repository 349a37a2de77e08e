"""The shipped agent definitions with some fields changed, written to a folder of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.core.settings import REPO_ROOT

SHIPPED = REPO_ROOT / "deploy" / "agents"


def write_agents(
    target: Path,
    *,
    model: dict[str, Any] | None = None,
    reliability: dict[str, Any] | None = None,
    concurrency: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
    handoff: dict[str, dict[str, Any]] | None = None,
    fallback_model: str | None = None,
    blocks: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """``model`` fields are set on every model of each chain, ``reliability`` and ``concurrency`` fields
    on those policies; the agents' budgets are replaced by ``budget`` (by default: none, so that calls
    make no budget round trips unless a test asks for them), and their handoff policies by
    ``handoff[agent name]`` (by default: autonomous, so that every event has exactly one outcome
    record); ``fallback_model`` adds a model of that name after the last of each chain; ``blocks[agent
    name]`` sets top-level fields of that agent (``tools``, ``context``, ``prompt``...). The shipped
    ``tools`` and ``context`` blocks are left out unless ``blocks`` sets them (the CRM they reach runs
    only where a test starts it)."""
    target.mkdir(parents=True, exist_ok=True)
    for source in SHIPPED.glob("*.yaml"):
        definition = yaml.safe_load(source.read_text())
        for spec in definition["model_chain"]:
            spec.update(model or {})
        if fallback_model is not None:
            definition["model_chain"].append({**definition["model_chain"][-1], "model": fallback_model})
        definition["reliability"] = {**definition.get("reliability", {}), **(reliability or {})}
        definition["concurrency"] = {**definition.get("concurrency", {}), **(concurrency or {})}
        definition["budget"] = budget or {}
        definition["handoff"] = (handoff or {}).get(definition["name"], {})
        definition = without_connectors(definition)
        definition.update((blocks or {}).get(definition["name"], {}))
        (target / source.name).write_text(yaml.safe_dump(definition, allow_unicode=True))
    return target


def without_connectors(definition: dict[str, Any]) -> dict[str, Any]:
    """An agent's definition without its ``tools`` and ``context`` blocks."""
    return {name: value for name, value in definition.items() if name not in ("tools", "context")}


def write_bare_agents(target: Path) -> Path:
    """The shipped agent files as they are, but for their ``tools`` and ``context`` blocks."""
    target.mkdir(parents=True, exist_ok=True)
    for source in SHIPPED.glob("*.yaml"):
        bare = without_connectors(yaml.safe_load(source.read_text()))
        (target / source.name).write_text(yaml.safe_dump(bare, allow_unicode=True))
    return target
