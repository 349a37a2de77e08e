"""`keel registry serve`: the catalogue over the Schema Registry REST API, read-only, until SIGTERM or
SIGINT. Point a downstream consumer's ``schema.registry.url`` at it (docs/topics.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from streams.agent.definition import load_agents
from streams.apps.registry.store import SchemaStore
from streams.apps.registry.web import build_app
from streams.contracts.registry_subjects import served_subjects
from streams.core.catalogue import load_catalogue
from streams.core.settings import Settings

log = logging.getLogger(__name__)


def catalogue_store(settings: Settings) -> SchemaStore:
    """The embedded catalogue under its own ids, with every topic subject of the configured agents."""
    catalogue = load_catalogue(settings.schemas_dir)
    agents = load_agents(settings.agents_dir, catalogue, only=settings.agents or None)
    return SchemaStore.serving(served_subjects(catalogue, agents, settings))


@contextlib.asynccontextmanager
async def running(settings: Settings, store: SchemaStore, *, port: int | None = None) -> AsyncIterator[int]:
    """The endpoint listening; yields its port (0 asks the system for one)."""
    runner = web.AppRunner(build_app(store), access_log=None)
    await runner.setup()
    try:
        chosen = settings.registry_web_port if port is None else port
        await web.TCPSite(runner, settings.registry_web_host, chosen).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def serve(settings: Settings) -> None:
    if settings.schema_registry_url:
        log.warning(
            "KEEL_SCHEMA_REGISTRY_URL is set: Keel writes that registry's ids, so this endpoint's catalogue ids "
            "do not describe its topics; point consumers at that registry instead"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    store = catalogue_store(settings)
    async with running(settings, store) as port:
        log.warning("schema registry API on http://%s:%d/ (%d subjects)", settings.registry_web_host, port,
                    len(store.subjects()))  # fmt: skip
        await stop.wait()
