"""Schema Registry subjects of Keel's topics, by the topic-name strategy: ``<topic>-value``.

Each topic's subject lists the catalogue schemas of what Keel writes there, oldest first (a version per
schema, the way a registry would have them had every one been registered in turn); the latest is the
schema Keel writes today. The catalogue's own subjects (``keel.dlq-value``, ``<agent>.output``, ...)
are kept as they are. Both Keel's registry endpoint (streams/apps/registry/) and client mode
(registering at start-up) read this plan.
"""

from __future__ import annotations

from dataclasses import dataclass

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
)
from streams.core.catalogue import Catalogue, CatalogueSchema
from streams.core.settings import Settings

# The catalogue subject of what Keel encodes on each shared topic.
_SHARED = {
    AUDIT: "keel.audit-value",
    USAGE: "keel.usage-value",
    BUDGET_REQUESTS: "keel.budget-requests-value",
    BUDGET_DECISIONS: "keel.budget-decisions-value",
    ALERTS: "keel.alerts-value",
    REVIEW_DECISIONS: "keel.review-decisions-value",
    AGENT_CONFIGS: "keel.agent-configs-value",
}
REQUEST = "keel.request-value"


@dataclass(frozen=True, slots=True)
class TopicSubject:
    subject: str  # ``<topic>-value``
    topic: str
    versions: tuple[CatalogueSchema, ...]  # oldest first; the last is what Keel writes
    encoded: bool  # Keel encodes these values (False: retry and parked topics copy the input's bytes)
    agent: str | None = None  # the agent whose results these are (results subjects only)

    @property
    def latest(self) -> CatalogueSchema:
        return self.versions[-1]


def value_subject(topic: str) -> str:
    """The topic-name strategy, as Confluent's serializers apply it to values."""
    return f"{topic}-value"


def topic_subjects(catalogue: Catalogue, agents: list[Agent], settings: Settings) -> list[TopicSubject]:
    """Every topic Keel writes Avro to, its subject and schema versions; one entry per topic."""
    by_subject: dict[str, list[CatalogueSchema]] = {}
    for entry in catalogue.entries():
        by_subject.setdefault(entry.subject, []).append(entry)
    plan: dict[str, TopicSubject] = {}

    def add(topic: str, catalogue_subject: str, *, encoded: bool = True, agent: str | None = None) -> None:
        versions = tuple(by_subject.get(catalogue_subject, ()))
        if versions and topic not in plan:
            plan[topic] = TopicSubject(value_subject(topic), topic, versions, encoded, agent)

    for name, catalogue_subject in _SHARED.items():
        add(settings.topic(name), catalogue_subject)
    for agent in agents:
        topics = agent_topics(agent, settings)
        add(topics.results, agent.result_schema.subject, agent=agent.name)
        add(topics.review, "keel.review-value")
        add(topics.dlq, "keel.dlq-value")
        add(topics.input, REQUEST)  # `keel publish` and `keel demo` write it; business systems do too
        for copied in (*topics.retries, topics.parked):
            add(copied, REQUEST, encoded=False)
    return list(plan.values())


def served_subjects(catalogue: Catalogue, agents: list[Agent], settings: Settings) -> dict[str, list[CatalogueSchema]]:
    """What Keel's registry endpoint serves: the topic subjects and the catalogue's own, each with its
    versions (oldest first)."""
    subjects: dict[str, list[CatalogueSchema]] = {}
    for entry in catalogue.entries():
        subjects.setdefault(entry.subject, []).append(entry)
    for item in topic_subjects(catalogue, agents, settings):
        subjects.setdefault(item.subject, list(item.versions))
    return dict(sorted(subjects.items()))
