"""Every topic Keel reads or writes, named and sized in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.agent.definition import Agent
from streams.core.settings import Settings
from streams.cost.usage_windows import WINDOWS, WindowSpec

AUDIT = "keel.audit"
USAGE = "keel.usage"
BUDGET_REQUESTS = "keel.budget.requests"  # keyed by budget scope (streams/cost/budget_records.py)
BUDGET_DECISIONS = "keel.budget.decisions"
ALERTS = "keel.alerts"
REVIEW_DECISIONS = "keel.review.decisions"  # keyed by review item id (streams/review/records.py)
AGENT_CONFIGS = "keel.agent-configs"  # agent versions and labels, one partition (streams/contracts/agent_configs.py)
ALERTS_RETENTION_S = 7 * 86_400  # `keel alerts list` shows this far back; open incidents are read back from it
OBSERVATIONS_RETENTION_S = 25 * 3600  # longer than any rule looks back (streams/alerts/rules.py: MAX_LOOKBACK_S)


@dataclass(frozen=True, slots=True)
class AgentTopics:
    input: str
    results: str
    review: str
    dlq: str
    parked: str  # events waiting for budget (streams/contracts/park.py)
    retries: tuple[str, ...] = ()  # retry tiers 1..n (streams/contracts/retry.py)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


def outcome_topic(settings: Settings, agent_name: str, kind: str) -> str:
    """``<agent>.results``, ``.review``, ``.dlq``, ``.parked`` or ``.retry.<n>``, in the settings' namespace."""
    return settings.topic(f"{agent_name}.{kind}")


def agent_topics(agent: Agent, settings: Settings) -> AgentTopics:
    tiers = range(1, len(agent.definition.reliability.retry_delays_s) + 1)
    return AgentTopics(
        input=settings.topic(agent.definition.input_topic),
        results=outcome_topic(settings, agent.name, "results"),
        review=outcome_topic(settings, agent.name, "review"),
        dlq=outcome_topic(settings, agent.name, "dlq"),
        parked=outcome_topic(settings, agent.name, "parked"),
        retries=tuple(outcome_topic(settings, agent.name, f"retry.{tier}") for tier in tiers),
    )


def outcomes_topic(settings: Settings, agent: Agent) -> str:
    """The compacted topic of an agent's completed events (streams/kafka/outcome_store.py)."""
    return f"{settings.app_id}-{agent.name}-outcomes"


def budget_ledger_topic(settings: Settings) -> str:
    """The compacted topic of the budget owners' ledger snapshots (streams/apps/worker/budget_owner.py)."""
    return f"{settings.app_id}-budget-ledger"


def usage_app_id(settings: Settings) -> str:
    """The aggregator's faust app id and consumer group (streams/apps/aggregator/usage_stream.py)."""
    return f"{settings.app_id}-usage"


def usage_changelog(settings: Settings, spec: WindowSpec) -> str:
    """The changelog of an aggregation table, as faust names it."""
    return f"{usage_app_id(settings)}-{spec.table}-changelog"


def alert_observations_topic(settings: Settings) -> str:
    """Usage and audit records as compact observations, keyed by the scope the alert rules evaluate
    (``agent=...``), so that one aggregator sees all of a scope (streams/apps/aggregator/alert_stream.py). Internal."""
    return f"{usage_app_id(settings)}-alert-observations"


def alert_evaluator_group(settings: Settings) -> str:
    """The consumer group that shares the observation partitions out between aggregators."""
    return f"{usage_app_id(settings)}-alerts"


def alert_forwarder_group(settings: Settings) -> str:
    """The consumer group that forwards usage and audit records to the observation topic."""
    return f"{usage_app_id(settings)}-alert-forwarder"


def alert_relay_group(settings: Settings) -> str:
    """`keel alerts relay`'s consumer group: its committed offsets are the alerts every sink took."""
    return f"{settings.app_id}-alerts-relay"


def intake_group(settings: Settings) -> str:
    """The workers' consumer group of the input, retry and parked topics (streams/kafka/intake.py): one
    per set of agents (``KEEL_AGENTS``), so that workers of one agent, running as its principal
    (streams/contracts/acls.py), never share a group with another agent's, whose topics they may not
    describe; a worker of every agent keeps the app id."""
    if not settings.agents:
        return settings.app_id
    return f"{settings.app_id}-worker-{'-'.join(sorted(set(settings.agents)))}"


def budget_owner_group(settings: Settings) -> str:
    """The budget owners' consumer group of the budget requests (streams/apps/worker/budget_owner.py)."""
    return f"{settings.app_id}-budget-owners"


def applier_group(settings: Settings) -> str:
    """The review applier's consumer group: its committed offsets are the decisions already applied."""
    return f"{settings.app_id}-review-applier"


def topic_plan(agents: list[Agent], settings: Settings) -> list[TopicSpec]:
    names: list[str] = [settings.topic(name) for name in (AUDIT, USAGE, BUDGET_REQUESTS, BUDGET_DECISIONS)]
    for agent in agents:
        topics = agent_topics(agent, settings)
        names += [topics.input, topics.results, topics.dlq, topics.parked, *topics.retries]
    unique = list(dict.fromkeys(names))  # two agents may share an input topic
    plain = [TopicSpec(name, settings.partitions, settings.replication_factor) for name in unique]
    stores = [
        _compacted(settings, outcomes_topic(settings, agent), settings.outcome_retention_hours * 3600)
        for agent in agents
    ]
    changelogs = [
        _compacted(settings, usage_changelog(settings, spec), spec.expires.total_seconds()) for spec in WINDOWS
    ]
    ledger = TopicSpec(budget_ledger_topic(settings), settings.partitions, settings.replication_factor, _COMPACT)
    alerting = [
        _retained(settings, settings.topic(ALERTS), ALERTS_RETENTION_S),
        _retained(settings, alert_observations_topic(settings), OBSERVATIONS_RETENTION_S),
    ]
    # Kept until deleted by hand: a review item waits for a human as long as it takes, and the review
    # service rebuilds its queue by reading these topics from the beginning (streams/apps/review/feed.py).
    review = [_retained(settings, agent_topics(agent, settings).review, None) for agent in agents]
    review.append(_retained(settings, settings.topic(REVIEW_DECISIONS), None))
    # One partition: a label names a version written before it, and every worker reads both in that order.
    configs = TopicSpec(settings.topic(AGENT_CONFIGS), 1, settings.replication_factor, _COMPACT)
    return [*plain, *stores, *changelogs, ledger, *alerting, *review, configs]


_COMPACT = {"cleanup.policy": "compact"}  # a ledger per budget scope, kept for as long as the scope exists


def _retained(settings: Settings, name: str, retention_s: float | None) -> TopicSpec:
    """Records older than ``retention_s`` are deleted; None: never."""
    retention_ms = -1 if retention_s is None else int(retention_s * 1000)
    config = {"cleanup.policy": "delete", "retention.ms": str(retention_ms)}
    return TopicSpec(name, settings.partitions, settings.replication_factor, config)


def _compacted(settings: Settings, name: str, retention_s: float) -> TopicSpec:
    """Keyed state: the latest record per key, for ``retention_s``."""
    config = {"cleanup.policy": "compact,delete", "retention.ms": str(int(retention_s * 1000))}
    return TopicSpec(name, settings.partitions, settings.replication_factor, config)
