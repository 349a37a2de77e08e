"""Least-privilege principals: which ACLs each Keel process needs, derived from the agents and the
settings through the topic and group names of streams/contracts/topics.py (so the plan never drifts
from what the processes use). Pure: `keel acl plan|apply` (streams/cli/acl.py) prints and creates it,
and a worker checks its own grants at start-up (streams/kafka/acl_admin.py).

One principal per agent's worker group (the budget owner and its clients run inside every worker, so
their grants are the worker's), the aggregator, the alert relay, the review service and an operator
(`keel topics`, `dlq`, `budget`, `usage`, `alerts list`). Managing ACLs themselves is the cluster
admin's (ALTER on the cluster), never a Keel principal's. Every principal may DESCRIBE the topics its
process checks at start-up (``ensure_topics`` over its ``topic_plan``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from streams.agent.context_lookups import context_topics
from streams.agent.definition import Agent
from streams.contracts.topics import (
    AGENT_CONFIGS,
    ALERTS,
    AUDIT,
    BUDGET_DECISIONS,
    BUDGET_REQUESTS,
    REVIEW_DECISIONS,
    USAGE,
    agent_topics,
    alert_evaluator_group,
    alert_forwarder_group,
    alert_observations_topic,
    alert_relay_group,
    applier_group,
    budget_ledger_topic,
    budget_owner_group,
    intake_group,
    outcomes_topic,
    topic_plan,
    usage_app_id,
    usage_changelog,
)
from streams.core.errors import ConfigError
from streams.core.settings import Settings
from streams.cost.usage_windows import WINDOWS

ResourceType = Literal["TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID"]
Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE"]
OPERATIONS: tuple[Operation, ...] = ("READ", "WRITE", "CREATE", "DESCRIBE")
PatternType = Literal["LITERAL", "PREFIXED"]


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW ``operation`` on a resource, from any host."""

    resource_type: ResourceType
    resource_name: str
    operation: Operation
    pattern_type: PatternType = "LITERAL"


@dataclass(frozen=True)
class Principal:
    name: str  # the user name: SCRAM user, OAuth client, a certificate's mapped CN (``User:<name>``)
    process: str  # what runs as it
    grants: tuple[Grant, ...]

    @property
    def principal(self) -> str:
        return f"User:{self.name}"


def principal_name(settings: Settings, role: str) -> str:
    """``keel[-<namespace>]-<role>``, lower case with hyphens: a valid SCRAM user and Kubernetes name
    (Strimzi's ``KafkaUser`` is named after its user)."""
    name = re.sub(r"[^a-z0-9.-]", "-", f"{settings.app_id}-{role}".lower())
    return re.sub(r"-{2,}", "-", name).strip("-.")


def _topics(operations: Iterable[Operation], names: Iterable[str]) -> list[Grant]:
    return [Grant("TOPIC", name, op) for name in names for op in operations]


def _groups(names: Iterable[str]) -> list[Grant]:
    return [Grant("GROUP", name, "READ") for name in names]


def _with_describe(grants: list[Grant], checked: Iterable[str]) -> tuple[Grant, ...]:
    """DESCRIBE on every checked topic the grants do not already read or write (which implies it)."""
    covered = {g.resource_name for g in grants if g.resource_type == "TOPIC"}
    extra = [Grant("TOPIC", name, "DESCRIBE") for name in checked if name not in covered]
    return tuple(sorted(set(grants + extra)))


def _planned(agents: list[Agent], settings: Settings) -> list[str]:
    return [spec.name for spec in topic_plan(agents, settings)]


def worker(agent: Agent, settings: Settings) -> Principal:
    topics, t = agent_topics(agent, settings), settings.topic
    waiting = [topics.parked, *topics.retries]
    grants = [
        *_groups([intake_group(settings.model_copy(update={"agents": [agent.name]})), budget_owner_group(settings)]),
        *_topics(["READ"], [topics.input, *waiting, t(AGENT_CONFIGS)]),
        *_topics(["READ"], [t(name) for name in sorted(context_topics(agent.definition.context))]),  # lookups
        *_topics(["WRITE"], [topics.results, topics.review, topics.dlq, *waiting, t(AUDIT), t(USAGE), t(ALERTS)]),
        *_topics(["READ", "WRITE"], [outcomes_topic(settings, agent)]),
        # budget clients ask and read answers; the budget owner (in every worker) answers and keeps a ledger
        *_topics(["READ", "WRITE"], [t(BUDGET_REQUESTS), t(BUDGET_DECISIONS), budget_ledger_topic(settings)]),
    ]
    return Principal(principal_name(settings, f"worker-{agent.name}"), f"keel worker (KEEL_AGENTS={agent.name})",
                     _with_describe(grants, _planned([agent], settings)))  # fmt: skip


def aggregator(agents: list[Agent], settings: Settings) -> Principal:
    t, observations = settings.topic, alert_observations_topic(settings)
    changelogs = [usage_changelog(settings, spec) for spec in WINDOWS]
    grants = [
        *_groups([usage_app_id(settings), alert_forwarder_group(settings), alert_evaluator_group(settings)]),
        *_topics(["READ"], [t(USAGE), t(AUDIT)]),
        *_topics(["READ", "WRITE"], [*changelogs, observations, t(ALERTS)]),
        *_topics(["READ", "WRITE"], [t(AGENT_CONFIGS)]),  # the canary judge rolls a worse canary back
    ]
    return Principal(principal_name(settings, "aggregator"), "keel aggregate",
                     _with_describe(grants, _planned(agents, settings)))  # fmt: skip


def relay(settings: Settings) -> Principal:
    grants = [*_groups([alert_relay_group(settings)]), *_topics(["READ"], [settings.topic(ALERTS)])]
    return Principal(principal_name(settings, "relay"), "keel alerts relay", tuple(sorted(grants)))


def review(agents: list[Agent], settings: Settings) -> Principal:
    """The only writer of the decisions topic; it reads the review topics of the agents it serves and
    releases decisions as results, dead letters, re-runs (the input topic) and audit records."""
    t, served = settings.topic, [agent_topics(agent, settings) for agent in agents]
    grants = [
        *_groups([applier_group(settings)]),
        *_topics(["READ", "WRITE"], [t(REVIEW_DECISIONS)]),
        *_topics(["READ"], [topics.review for topics in served]),
        *_topics(["WRITE"], [name for tp in served for name in (tp.results, tp.dlq, tp.input)]),
        *_topics(["WRITE"], [t(AUDIT), t(ALERTS)]),  # alerts: review SLAs
    ]
    return Principal(principal_name(settings, "review"), "keel review serve",
                     _with_describe(grants, _planned(agents, settings)))  # fmt: skip


def operator(agents: list[Agent], settings: Settings) -> Principal:
    """`keel topics` (creates the planned topics), `dlq list|show|replay`, `budget status|raise`,
    `usage` and `alerts list`."""
    t, served = settings.topic, [agent_topics(agent, settings) for agent in agents]
    planned = _planned(agents, settings)
    grants = [
        *_topics(["CREATE", "DESCRIBE"], planned),
        *_topics(["READ"], [tp.dlq for tp in served]),
        *_topics(["WRITE"], [tp.input for tp in served]),  # dlq replay
        *_topics(["READ"], [t(ALERTS), budget_ledger_topic(settings), t(BUDGET_DECISIONS)]),
        *_topics(["WRITE"], [t(BUDGET_REQUESTS)]),  # budget raise
        *_topics(["READ"], [usage_changelog(settings, spec) for spec in WINDOWS]),
        *_topics(["READ", "WRITE"], [t(AGENT_CONFIGS)]),  # keel agent (and the aggregator's canary judge)
    ]
    return Principal(principal_name(settings, "operator"), "keel topics, dlq, budget, usage, alerts list, agent",
                     tuple(sorted(set(grants))))  # fmt: skip


def evaluator(agents: list[Agent], settings: Settings) -> Principal:
    """`keel eval`: it reads what it runs on (the audit trail, the agents' review items and the decisions on
    them) and the agent versions, and writes its calls' usage records and its evaluations (on
    ``keel.agent-configs``). Apart from the operator: the audit holds every event's payload."""
    t, served = settings.topic, [agent_topics(agent, settings) for agent in agents]
    grants = [
        *_topics(["READ"], [t(AUDIT), t(REVIEW_DECISIONS), *(tp.review for tp in served)]),
        *_topics(["READ", "WRITE"], [t(AGENT_CONFIGS)]),
        *_topics(["WRITE"], [t(USAGE)]),
    ]
    return Principal(principal_name(settings, "evaluator"), "keel eval", tuple(sorted(set(grants))))


def ingest(agents: list[Agent], settings: Settings) -> Principal:
    """`keel ingest serve`: it writes webhooks' events to the agents' input topics, and nothing else
    (with ``KEEL_AGENTS`` set to the agents its sources feed, to those topics only)."""
    grants = _topics(["WRITE"], [agent_topics(agent, settings).input for agent in agents])
    return Principal(principal_name(settings, "ingest"), "keel ingest serve", tuple(sorted(set(grants))))


def acl_plan(agents: list[Agent], settings: Settings) -> list[Principal]:
    """Every Keel principal of these agents in this namespace, with its grants."""
    principals = [
        *(worker(agent, settings) for agent in agents),
        aggregator(agents, settings),
        relay(settings),
        review(agents, settings),
        operator(agents, settings),
        evaluator(agents, settings),
        ingest(agents, settings),
    ]
    names = [p.name for p in principals]
    if len(set(names)) != len(names):
        raise ConfigError(f"agent names that differ only in case or punctuation share a principal: {names}")
    return principals


def missing_grants(needed: Iterable[Grant], allowed: Iterable[Grant]) -> list[Grant]:
    """What ``needed`` holds that ``allowed`` does not cover; READ or WRITE cover DESCRIBE, as in Kafka."""
    have = set(allowed)
    implied = {Grant(g.resource_type, g.resource_name, "DESCRIBE", g.pattern_type) for g in have
               if g.operation in ("READ", "WRITE")}  # fmt: skip
    return [g for g in needed if g not in have and g not in implied]
