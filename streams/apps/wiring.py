"""The one place that turns settings into concrete parts: catalogue, agents, model clients, emitter,
alert sinks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from random import Random

from connectors.models.anthropic import AnthropicClient
from connectors.models.openai_compat import OpenAICompatClient
from connectors.sinks.alert_sinks import HttpAlertSink, pagerduty_event, slack_message
from streams.agent.context_lookups import lookup_connectors
from streams.agent.definition import Agent, RateLimitPolicy
from streams.apps.registry.client_mode import load_schemas
from streams.apps.toolbox import build_toolbox, check_offered, tool_rate_limited, used_connectors
from streams.contracts.control import ControlKeys
from streams.contracts.control_keys import load_control_keys
from streams.contracts.emit import Emitter
from streams.contracts.topics import agent_topics
from streams.core.catalogue import Catalogue
from streams.core.connectors import ConnectorDefinition
from streams.core.errors import UnknownProvider
from streams.core.ports.alert_sink import AlertSink
from streams.core.ports.clock import Clock, SystemClock
from streams.core.ports.model import ModelClient
from streams.core.settings import ProviderSettings, Settings
from streams.cost.budget_config import Budgets, load_budgets
from streams.cost.pricing import Pricing, load_pricing
from streams.pipeline.circuit import CircuitBreakers
from streams.pipeline.deps import Deps
from streams.pipeline.limiter import Limiter
from streams.pipeline.model_slots import ModelSlots, slot_limits
from streams.pipeline.rate_limit import PerMinute, RateLimits
from streams.pipeline.rate_limit_table import load_rate_limits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    catalogue: Catalogue
    agents: list[Agent]
    deps: Deps
    emitter: Emitter
    pricing: Pricing
    budgets: Budgets
    limiter: Limiter  # also in deps; the worker gives it its share of each limit on every rebalance
    slots: ModelSlots  # also in deps; the worker gives it its metrics
    control_keys: ControlKeys  # verify re-run and replay headers (streams/contracts/control.py)

    async def aclose(self) -> None:
        for client in self.deps.models.values():
            await client.aclose()
        for tools in self.deps.toolbox.clients.values() if self.deps.toolbox else ():
            await tools.aclose()


def load_runtime(settings: Settings, *, tools: bool = True) -> Runtime:
    """Everything a worker runs on. ``tools=False``: no tool clients, for a command that reads the
    agents and calls no tool (`keel topics`, `keel budget`, the demo's watcher), so it needs none of
    the connectors' secrets; the agents' references to connectors are still checked."""
    catalogue, agents = load_schemas(settings)  # with a Schema Registry: its ids, or a refusal to start
    agents = [adapted(settings)(agent) for agent in agents]
    pricing = priced(settings, agents)
    connectors = used_connectors(settings, agents)
    deps = build_deps(settings, catalogue, agents, connectors=connectors if tools else None)
    if tools:
        check_offered(agents, deps.toolbox)
    assert isinstance(deps.limiter, Limiter)  # build_deps makes one; the Runtime hands it its shares
    emitter = Emitter(catalogue, settings, agents, pricing=pricing)
    budgets = load_budgets(settings.budgets_file, agents, pricing)
    keys = load_control_keys(settings)
    return Runtime(settings, catalogue, agents, deps, emitter, pricing, budgets, deps.limiter, deps.slots, keys)


def priced(settings: Settings, agents: list[Agent]) -> Pricing:
    """The price table, with a warning for every model of the agents' chains it has no price for."""
    pricing = load_pricing(settings.pricing_file)
    chains = [(spec.provider, spec.model) for agent in agents for spec in agent.definition.model_chain]
    for unpriced in pricing.unpriced(chains):
        log.warning("%s has no price in %s: its usage records carry no cost", unpriced, settings.pricing_file)
    return pricing


def build_deps(
    settings: Settings,
    catalogue: Catalogue,
    agents: list[Agent],
    *,
    connectors: Mapping[str, ConnectorDefinition] | None = None,
) -> Deps:
    """What ``process`` needs to run ``agents`` (a worker's, `keel eval`'s): model clients, breakers,
    rate limits and model slots, from settings; tool clients for ``connectors`` (the worker's: `keel
    eval` calls none: it offers no tools, and skips optional lookups). Budgets are the worker's to add."""
    clock, connectors = SystemClock(), connectors or {}
    return Deps(
        catalogue=catalogue,
        models=build_models(settings, agents),
        clock=clock,
        breakers=CircuitBreakers(
            failure_threshold=settings.circuit_failure_threshold, cooldown_s=settings.circuit_cooldown_s
        ),
        rng=Random(),  # noqa: S311  (jitter, not secrets)
        max_event_bytes=settings.max_event_bytes,
        limiter=build_limiter(settings, agents, clock, connectors=connectors),
        slots=build_slots(settings, agents, clock),
        toolbox=build_toolbox(connectors),
    )


def build_slots(settings: Settings, agents: list[Agent], clock: Clock) -> ModelSlots:
    """Each model's concurrency limit: the lowest of its provider's and its chain entries' (any agent's)."""
    providers = {name: endpoint.max_concurrent for name, endpoint in settings.provider_endpoints().items()}
    limits = slot_limits(providers, (spec for agent in agents for spec in agent.definition.model_chain))
    if limits:
        log.info("model concurrency: %s", ", ".join(f"{key} {n} at a time" for key, n in sorted(limits.items())))
    return ModelSlots(limits, clock)


def build_limiter(
    settings: Settings,
    agents: list[Agent],
    clock: Clock,
    *,
    connectors: Mapping[str, ConnectorDefinition] | None = None,
) -> Limiter:
    """The agents' own limits, the table's limits of the models they use and the connectors' own
    (``tool:<connector>``); each limit's share follows the partitions of the topics its agents read
    (their input and retry tier topics)."""
    declared = load_rate_limits(settings.rate_limits_file).by_model()
    declared |= {
        key: RateLimitPolicy(requests_per_minute=rpm) for key, rpm in tool_rate_limited(connectors or {}).items()
    }
    chains = {agent.name: _keys_used(agent) for agent in agents}
    topics = {agent.name: frozenset(_topics_read(agent, settings)) for agent in agents}
    used = set().union(*chains.values())
    limits = RateLimits.declare(
        agents={agent.name: _per_minute(agent.definition.rate_limit) for agent in agents},
        models={key: _per_minute(limit) for key, limit in declared.items() if key in used},
        burst_s=settings.rate_limit_burst_s,
        now=clock.monotonic(),
    )
    by_model = {key: frozenset().union(*(topics[a] for a, keys in chains.items() if key in keys)) for key in used}
    return Limiter(limits, clock, reads={**topics, **by_model}, partitions=settings.partitions)


def _keys_used(agent: Agent) -> set[str]:
    """The limiter keys an agent's calls take: its models', and its connectors' (``tool:<connector>``)."""
    tools = agent.definition.tools
    names = {connector for connector, _ in tools.allowed()} if tools is not None else set()
    connectors = {f"tool:{name}" for name in names | lookup_connectors(agent.definition.context)}
    return {spec.key for spec in agent.definition.model_chain} | connectors


def _topics_read(agent: Agent, settings: Settings) -> tuple[str, ...]:
    names = agent_topics(agent, settings)
    return (names.input, *names.retries)


def _per_minute(policy: RateLimitPolicy) -> PerMinute:
    return PerMinute(requests=policy.requests_per_minute, tokens=policy.tokens_per_minute)


def adapted(settings: Settings) -> Callable[[Agent], Agent]:
    """What the worker does to every agent it runs, from its file or from ``keel.agent-configs``."""
    override = settings.provider_override
    return (lambda agent: with_provider(agent, override)) if override else (lambda agent: agent)


def with_provider(agent: Agent, provider: str) -> Agent:
    """The same agent with every model in its chain served by ``provider`` (demo, tests)."""
    chain = [spec.model_copy(update={"provider": provider}) for spec in agent.definition.model_chain]
    definition = agent.definition.model_copy(update={"model_chain": chain})
    return replace(agent, definition=definition, config_version=f"{agent.config_version}-{provider}")


def build_models(settings: Settings, agents: list[Agent]) -> dict[str, ModelClient]:
    endpoints = settings.provider_endpoints()
    models: dict[str, ModelClient] = {}
    for agent in agents:
        for spec in agent.definition.model_chain:
            if spec.provider in models:
                continue
            endpoint = endpoints.get(spec.provider)
            if endpoint is None:
                raise UnknownProvider(
                    f"{agent.source_path}: model_chain uses provider {spec.provider!r}, which is not configured; "
                    f"known: {', '.join(sorted(endpoints))} (set KEEL_PROVIDERS__{spec.provider.upper()}__BASE_URL)"
                )
            models[spec.provider] = model_client(spec.provider, endpoint)
    return models


def model_client(provider: str, endpoint: ProviderSettings) -> ModelClient:
    """The client that speaks the endpoint's protocol."""
    if endpoint.protocol == "anthropic":
        return AnthropicClient(
            provider, endpoint.base_url, api_key=endpoint.api_key, max_connections=endpoint.max_connections
        )
    return OpenAICompatClient(
        provider,
        endpoint.base_url,
        api_key=endpoint.api_key,
        max_connections=endpoint.max_connections,
        response_format=endpoint.response_format,
    )


def build_alert_sinks(settings: Settings) -> list[AlertSink]:
    """The sinks `keel alerts relay` sends to: Slack and/or a PagerDuty-style webhook, as configured."""
    sinks: list[AlertSink] = []
    timeout_s = settings.alert_sink_timeout_s
    if settings.alert_slack_webhook_url is not None:
        url = settings.alert_slack_webhook_url.get_secret_value()
        sinks.append(HttpAlertSink("slack", url, slack_message, timeout_s=timeout_s))
    if settings.alert_webhook_url is not None:
        key = settings.alert_webhook_routing_key
        body = partial(pagerduty_event, routing_key=key.get_secret_value() if key else None)
        sinks.append(HttpAlertSink("webhook", settings.alert_webhook_url, body, timeout_s=timeout_s))
    return sinks
