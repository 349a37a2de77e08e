"""What the review service's tests on the real broker share: a namespace with the shipped agents' topics
(``review_namespace``), review items published as the worker writes them, and the outcome topics
read back."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from harness import polled
from review_samples import review_record

from connectors.local.daemon import run_sync
from streams.agent.definition import load_agents
from streams.contracts.topics import topic_plan
from streams.core import wire
from streams.core.catalogue import Catalogue, load_catalogue
from streams.core.settings import REPO_ROOT, Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import client_config
from streams.kafka.consumers import read_to_end
from streams.kafka.producer import RecordProducer

RESULTS, DLQ, AUDIT = "support_triage.results", "support_triage.dlq", "keel.audit"


def review_namespace(kafka_bootstrap: str, state_dir: Path) -> Settings:
    """Settings of a fresh namespace whose topics the shipped agents' plan has created."""
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        namespace=f"it-{uuid.uuid4().hex[:8]}",
        agents_dir=REPO_ROOT / "deploy" / "agents",
        state_dir=state_dir,
        review_web_port=0,
    )
    catalogue = load_catalogue(settings.schemas_dir)
    plan = topic_plan(load_agents(settings.agents_dir, catalogue), settings)
    run_sync(lambda: ensure_topics(client_config(settings), plan))
    return settings


async def publish_items(settings: Settings, catalogue: Catalogue, routes: list[str]) -> list[str]:
    agent = load_agents(settings.agents_dir, catalogue, only=["support_triage"])[0]
    now_ms = int(time.time() * 1000)
    records = [
        review_record(catalogue, settings, agent, route=route, created_at_ms=now_ms - 60_000 + n, offset=n)
        for n, route in enumerate(routes)
    ]
    async with RecordProducer(client_config(settings)) as producer:
        await producer.send_all(records)
    return [record.key.decode() for record in records if record.key]


async def topic_values(settings: Settings, catalogue: Catalogue, name: str) -> list[dict[str, Any]]:
    tps = [TopicPartition(settings.topic(name), p) for p in range(settings.partitions)]
    return [wire.decode(catalogue, m.value) async for m in read_to_end(client_config(settings), tps)]


async def outcomes_when(
    settings: Settings,
    catalogue: Catalogue,
    done: Callable[[dict[str, list[dict[str, Any]]]], bool],
    *,
    wait_s: float = 30,
) -> dict[str, list[dict[str, Any]]]:
    """The results, dead letters and audit records, read until ``done`` holds of them or ``wait_s`` has
    passed (one reading with ``wait_s=0``)."""

    async def read() -> dict[str, list[dict[str, Any]]]:
        return {name: await topic_values(settings, catalogue, name) for name in (RESULTS, DLQ, AUDIT)}

    return await polled(read, done, wait_s=wait_s)


def by_event(values: list[dict[str, Any]]) -> Counter[str]:
    return Counter(v["event_id"] for v in values)
