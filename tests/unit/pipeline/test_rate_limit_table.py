"""Declared rate limits: the table of provider models, and the limiter the wiring builds from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from streams.agent.definition import Agent, RateLimitPolicy
from streams.apps.wiring import build_limiter
from streams.core.errors import RateLimitTableError
from streams.core.ports.clock import SystemClock
from streams.core.settings import REPO_ROOT, Settings
from streams.pipeline.rate_limit import Permit
from streams.pipeline.rate_limit_table import load_rate_limits


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "rate_limits.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_shipped_table_declares_nothing() -> None:
    assert load_rate_limits(REPO_ROOT / "deploy" / "rate_limits.yaml").by_model() == {}


def test_a_table_names_limits_per_provider_model(tmp_path: Path) -> None:
    entries = [
        {"provider": "openai", "model": "gpt-4o-mini", "requests_per_minute": 500, "tokens_per_minute": 200000},
        {"provider": "sim", "model": "m", "tokens_per_minute": 1000},
    ]
    table = load_rate_limits(write(tmp_path, {"limits": entries})).by_model()
    assert sorted(table) == ["openai/gpt-4o-mini", "sim/m"]
    assert (table["sim/m"].requests_per_minute, table["sim/m"].tokens_per_minute) == (None, 1000)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"limits": [{"provider": "sim", "model": "m", "requests_per_minute": 1}] * 2}, "limited twice: sim/m"),
        ({"limits": [{"provider": "sim", "model": "m", "requests_per_minute": -1}]}, "greater than 0"),
        ({"limits": [{"provider": "sim", "requests_per_minute": 1}]}, "model"),
        ({"limit": []}, "Extra inputs"),
    ],
)
def test_an_invalid_table_says_what_is_wrong(tmp_path: Path, document: object, problem: str) -> None:
    with pytest.raises(RateLimitTableError, match=problem):
        load_rate_limits(write(tmp_path, document))


def test_a_missing_table_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RateLimitTableError, match="cannot read"):
        load_rate_limits(tmp_path / "nope.yaml")


def with_limit(agent: Agent, **limit: float) -> Agent:
    definition = agent.definition.model_copy(update={"rate_limit": RateLimitPolicy(**limit)})
    return dataclasses.replace(agent, definition=definition)


async def test_the_limiter_shares_each_limit_by_the_partitions_of_the_topics_behind_it(
    tmp_path: Path, agents: dict[str, Agent]
) -> None:
    model = agents["support_triage"].definition.model_chain[0]
    table = write(tmp_path, {"limits": [{"provider": model.provider, "model": model.model, "requests_per_minute": 60}]})
    settings = Settings(rate_limits_file=table, rate_limit_burst_s=0, partitions=4)
    triage, invoices = with_limit(agents["support_triage"], requests_per_minute=30), agents["invoice_extraction"]
    limiter = build_limiter(settings, [triage, invoices], SystemClock())
    assert not limiter.idle
    # this worker owns all of support.tickets and its three retry tiers, nothing of finance.invoices
    owned = [(topic, p) for topic in ("support.tickets", *(f"support_triage.retry.{n}" for n in (1, 2, 3)))
             for p in range(4)]  # fmt: skip
    limiter.assign(owned)
    first = await limiter.acquire("support_triage", model.key, tokens=10, max_wait_s=0)
    second = await limiter.acquire("support_triage", model.key, tokens=10, max_wait_s=0)
    assert isinstance(first, Permit) and not isinstance(second, Permit)
    assert second.limit == "agent_requests" and second.wait_s == pytest.approx(2.0, abs=0.05)  # all of 30 a minute
    on_the_model = await limiter.acquire("invoice_extraction", model.key, tokens=10, max_wait_s=0)
    assert not isinstance(on_the_model, Permit)  # half the model's 60 a minute: 2 s after the first call
    assert on_the_model.limit == "model_requests" and on_the_model.wait_s == pytest.approx(2.0, abs=0.05)


def test_without_declared_limits_the_limiter_is_idle(agents: dict[str, Agent]) -> None:
    assert build_limiter(Settings(), list(agents.values()), SystemClock()).idle
