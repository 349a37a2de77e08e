"""Reading outcomes back: what the demo, `make run` and the integration tests use to check every event ended.

A watcher snapshots the end of each outcome topic when it starts and reads everything written after
that, so it sees exactly the outcomes of the events published after it started.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError

from streams.contracts.topics import AUDIT, USAGE, outcome_topic
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.errors import KafkaAclMissing
from streams.core.kafka_client import ClientConfig
from streams.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Observed:
    kind: str  # result | review | dead_letter | parked | audit | usage
    event_id: str
    value: dict[str, Any]
    schema_id: int
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = 0  # when the record was written


@dataclass(slots=True)
class Tally:
    """Outcome records seen per event id."""

    by_kind: dict[str, dict[str, list[Observed]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )

    def add(self, observed: Observed) -> None:
        self.by_kind[observed.kind][observed.event_id].append(observed)

    def outcomes(self, event_id: str) -> list[Observed]:
        return [o for kind in ("result", "review", "dead_letter") for o in self.by_kind[kind].get(event_id, ())]

    def outcome_kinds(self, event_id: str) -> list[str]:
        return [kind for kind in ("result", "review", "dead_letter") if self.by_kind[kind].get(event_id)]

    def parked(self, event_id: str) -> bool:
        """Parked and not resumed into a final outcome (yet): an outcome of its own until it resumes."""
        return bool(self.by_kind["parked"].get(event_id)) and not self.outcome_kinds(event_id)

    def ended(self, event_id: str) -> bool:
        return bool(self.outcome_kinds(event_id)) and bool(self.by_kind["audit"].get(event_id))

    def summary(self, event_ids: list[str]) -> dict[str, int]:
        def with_kind(kind: str) -> int:
            return sum(1 for e in event_ids if self.by_kind[kind].get(e))

        return {
            "events": len(event_ids),
            "results": with_kind("result"),
            "review": with_kind("review"),
            "dead_letters": with_kind("dead_letter"),
            "parked": sum(1 for e in event_ids if self.parked(e)),
            "missing": sum(1 for e in event_ids if not self.outcome_kinds(e) and not self.parked(e)),
            "audit": with_kind("audit"),
            "usage": sum(len(self.by_kind["usage"].get(e, ())) for e in event_ids),
        }


def outcome_topics(settings: Settings, agent_names: list[str]) -> dict[str, str]:
    """Topic name → kind of record it holds."""
    kinds = {settings.topic(AUDIT): "audit", settings.topic(USAGE): "usage"}
    for name in agent_names:
        kinds[outcome_topic(settings, name, "results")] = "result"
        kinds[outcome_topic(settings, name, "review")] = "review"
        kinds[outcome_topic(settings, name, "dlq")] = "dead_letter"
        kinds[outcome_topic(settings, name, "parked")] = "parked"
    return kinds


class OutcomeWatcher:
    def __init__(self, kafka: ClientConfig, catalogue: Catalogue, topic_kinds: dict[str, str]) -> None:
        self._kafka = kafka
        self._catalogue = catalogue
        self._kinds = topic_kinds
        self._consumer = AIOKafkaConsumer(**kafka.kwargs(), enable_auto_commit=False)

    async def start(self, *, from_beginning: bool = False) -> None:
        await self._consumer.start()
        partitions = [
            TopicPartition(topic, p) for topic, count in (await self._partition_counts()).items() for p in range(count)
        ]
        self._consumer.assign(partitions)
        start = self._consumer.beginning_offsets if from_beginning else self._consumer.end_offsets
        for tp, offset in (await start(partitions)).items():
            self._consumer.seek(tp, offset)  # explicit and immediate: seek_to_*() can race the fetcher

    async def _partition_counts(self) -> dict[str, int]:
        admin = AIOKafkaAdminClient(**self._kafka.kwargs())
        await admin.start()
        try:
            described = await admin.describe_topics(list(self._kinds))
        finally:
            await admin.close()
        refused = sorted(t["topic"] for t in described if t["error_code"] == TopicAuthorizationFailedError.errno)
        if refused:  # not "nothing there": a principal without the ACLs would otherwise see an empty topic
            raise KafkaAclMissing(f"{self._kafka.describe()} may not read {', '.join(refused)} (`keel acl plan`)")
        return {t["topic"]: len(t["partitions"]) for t in described if not t["error_code"]}

    async def poll(self, *, timeout_s: float = 0.5) -> list[Observed]:
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=5000)
        observed = []
        for tp, messages in batches.items():
            kind = self._kinds[tp.topic]
            for message in messages:
                value = wire.decode(self._catalogue, message.value)
                schema_id = wire.read_header(message.value)
                observed.append(
                    Observed(kind, value["event_id"], value, schema_id, tuple(message.headers), message.timestamp)
                )
        return observed

    async def stop(self) -> None:
        await self._consumer.stop()
