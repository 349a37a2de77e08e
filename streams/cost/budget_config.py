"""Which budgets an event falls under, and their declared limits.

An agent's own budget is declared in its definition (``budget:``); the budget file (``deploy/budgets.yaml``,
or the file ``KEEL_BUDGETS_FILE`` names) adds budgets per tenant and may override an agent's, so that
operators change limits without changing an agent's config version. Every limit is a hard limit per UTC
day or month; ``soft_fraction`` of it raises an alert.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from streams.agent.definition import Agent, BudgetPolicy
from streams.core.config_file import load_model
from streams.core.errors import BudgetConfigError
from streams.cost.budget import BudgetLimits, Limits
from streams.cost.pricing import Pricing

log = logging.getLogger(__name__)


class BudgetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: dict[str, BudgetPolicy] = Field(default_factory=dict, description="Replace an agent's own budget")
    tenants: dict[str, BudgetPolicy] = Field(default_factory=dict)


Scope = tuple[str, BudgetLimits]  # ``agent:<name>`` or ``tenant:<tenant>``, and its limits


def limits_of(policy: BudgetPolicy) -> BudgetLimits:
    return BudgetLimits(
        day=Limits(policy.daily_usd, policy.daily_tokens),
        month=Limits(policy.monthly_usd, policy.monthly_tokens),
        soft_fraction=policy.soft_fraction,
    )


class Budgets:
    """The scopes of every (agent, tenant): looked up once per event, so kept in plain dicts."""

    def __init__(self, agents: dict[str, BudgetLimits], tenants: dict[str, BudgetLimits]) -> None:
        self._agents = {name: (f"agent:{name}", limits) for name, limits in agents.items() if limits}
        self._tenants = {name: (f"tenant:{name}", limits) for name, limits in tenants.items() if limits}

    def __bool__(self) -> bool:
        return bool(self._agents or self._tenants)

    def scopes(self, agent: str, tenant: str | None) -> list[Scope]:
        found = [self._agents[agent]] if agent in self._agents else []
        if tenant is not None and tenant in self._tenants:
            found.append(self._tenants[tenant])
        return found

    def by_scope(self) -> dict[str, BudgetLimits]:
        return dict([*self._agents.values(), *self._tenants.values()])


def load_budgets(path: Path, agents: list[Agent], pricing: Pricing) -> Budgets:
    """Missing file: only the agents' own budgets. An agent with a USD budget must have a price for
    every model of its chain: a call of unknown cost cannot be reserved."""
    document = _read(path)
    unknown = sorted(set(document.agents) - {agent.name for agent in agents})
    by_agent = {agent.name: limits_of(document.agents.get(agent.name, agent.definition.budget)) for agent in agents}
    tenant_usd = any(t.daily_usd or t.monthly_usd for t in document.tenants.values())
    for agent in agents:
        limits = by_agent[agent.name]
        if limits.day.usd or limits.month.usd or tenant_usd:
            chain = [(spec.provider, spec.model) for spec in agent.definition.model_chain]
            unpriced = pricing.unpriced(chain)
            if unpriced:
                raise BudgetConfigError(
                    f"{agent.source_path}: a USD budget applies to agent {agent.name}, but {', '.join(unpriced)} "
                    "has no price: add it to the price table (KEEL_PRICING_FILE)"
                )
    if unknown:  # perhaps agents this worker does not run (KEEL_AGENTS)
        log.warning("%s: agents: %s not loaded here; their budgets are not applied", path, ", ".join(unknown))
    return Budgets(by_agent, {tenant: limits_of(policy) for tenant, policy in document.tenants.items()})


def _read(path: Path) -> BudgetFile:
    if not path.exists():
        return BudgetFile()
    return load_model(path, BudgetFile, BudgetConfigError, what="the budget file")
