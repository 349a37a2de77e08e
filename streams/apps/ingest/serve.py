"""`keel ingest serve`: the declared sources (``KEEL_SOURCES_DIR``) served until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from streams.agent.definition import load_agents
from streams.apps.ingest.web import Ingest, Route
from streams.contracts.topics import agent_topics
from streams.core.catalogue import load_catalogue
from streams.core.settings import Settings
from streams.ingest.sources import SourceConfigError, load_sources
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer

log = logging.getLogger(__name__)


def routes(settings: Settings) -> dict[str, Route]:
    """Each source with its agent's input topic and its secret (read now); a source whose agent is not
    known is refused, naming it."""
    agents = {a.name: a for a in load_agents(settings.agents_dir, load_catalogue(settings.schemas_dir))}
    found: dict[str, Route] = {}
    for name, source in load_sources(settings.sources_dir).items():
        agent = agents.get(source.agent)
        if agent is None:
            raise SourceConfigError(f"source {name}: agent: no agent {source.agent!r} in {settings.agents_dir}")
        secret = source.signature.secret.read(f"source {name}: signature.secret").get_secret_value().encode()
        found[name] = Route(source, agent_topics(agent, settings).input, secret)
    return found


@contextlib.asynccontextmanager
async def running(settings: Settings, *, port: int | None = None) -> AsyncIterator[tuple[int, Ingest]]:
    """The endpoint listening, with its producer; yields its port (0 asks the system for one)."""
    producer = RecordProducer(client_config(settings), request_timeout_s=settings.produce_timeout_s)
    ingest = Ingest(routes(settings), load_catalogue(settings.schemas_dir), producer.send_all,
                    produce_timeout_s=settings.produce_timeout_s)  # fmt: skip
    runner = web.AppRunner(ingest.build_app(), access_log=None)
    await runner.setup()
    try:
        chosen = settings.ingest_web_port if port is None else port
        await web.TCPSite(runner, settings.ingest_web_host, chosen).start()
        yield int(runner.addresses[0][1]), ingest
    finally:
        await runner.cleanup()
        await producer.stop()


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with running(settings) as (port, _):
        log.warning("webhook ingest on http://%s:%d/ingest/<source>", settings.ingest_web_host, port)
        await stop.wait()
