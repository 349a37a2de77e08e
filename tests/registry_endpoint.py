"""Keel's Schema Registry endpoint on loopback, read-only (the catalogue) or in write mode (the stand-in
client mode is tested against), for tests that drive it with confluent-kafka's synchronous client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web
from confluent_kafka import Consumer
from loopback import app_server

from streams.agent.definition import Agent
from streams.apps.registry.store import SchemaStore
from streams.apps.registry.web import build_app
from streams.contracts.registry_subjects import served_subjects
from streams.core.catalogue import Catalogue
from streams.core.settings import Settings

STAND_IN_FIRST_ID = 10_001  # far from the catalogue's ids, so a test sees which ids were used


@contextmanager
def serving(store: SchemaStore, *, app: web.Application | None = None) -> Iterator[str]:
    """The endpoint over ``store`` (or ``app``, built on it); yields its base URL."""
    with app_server(app or build_app(store)) as server:
        yield server.base_url


def catalogue_store(catalogue: Catalogue, agents: list[Agent], settings: Settings) -> SchemaStore:
    return SchemaStore.serving(served_subjects(catalogue, agents, settings))


def stand_in_store() -> SchemaStore:
    return SchemaStore(writable=True, first_id=STAND_IN_FIRST_ID)


def read_all(
    bootstrap: str, topics: list[str], count: int, *, timeout_s: float = 30, connection: dict[str, str] | None = None
) -> list[Any]:
    """At least ``count`` messages of ``topics``, raw, with a plain librdkafka consumer; ``connection``:
    librdkafka's security properties for a secured cluster (``ClientConfig.confluent()``)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, **(connection or {}), "group.id": f"downstream-{uuid.uuid4().hex[:8]}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe(topics)
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages
