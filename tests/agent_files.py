"""The shipped agent definitions with some fields changed, written to a folder of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from streams.settings import REPO_ROOT


def write_agents(
    target: Path,
    *,
    model: dict[str, Any] | None = None,
    reliability: dict[str, Any] | None = None,
    concurrency: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
) -> Path:
    """``model`` fields are set on every model of each chain, ``reliability`` and ``concurrency`` fields
    on those policies; the agents' budgets are replaced by ``budget`` (by default: none, so that calls
    make no budget round trips unless a test asks for them)."""
    target.mkdir(parents=True, exist_ok=True)
    for source in (REPO_ROOT / "deploy" / "agents").glob("*.yaml"):
        definition = yaml.safe_load(source.read_text())
        for spec in definition["model_chain"]:
            spec.update(model or {})
        definition["reliability"] = {**definition.get("reliability", {}), **(reliability or {})}
        definition["concurrency"] = {**definition.get("concurrency", {}), **(concurrency or {})}
        definition["budget"] = budget or {}
        (target / source.name).write_text(yaml.safe_dump(definition, allow_unicode=True))
    return target
