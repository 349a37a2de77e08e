"""Keel's Schema Registry endpoint on loopback, read-only (the catalogue) or in write mode (the stand-in
client mode is tested against), for tests that drive it with confluent-kafka's synchronous client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web
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
