"""The faust worker: a thin shell that feeds input records to the pipeline and produces its records.

For each agent, one faust agent consumes the input topic with manual acks: an event is acked (and so
its offset becomes committable) only after every record of its outcome has been acknowledged by the
broker, so a crash never commits past an event whose outcome is not durably written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NoReturn

import faust

from streams.agents import Agent
from streams.decode import event_id_of
from streams.domain import SourceRecord
from streams.emit import OutRecord
from streams.kafka_admin import ensure_topics
from streams.outcome_store import OutcomeStore
from streams.pipeline import process
from streams.settings import Settings
from streams.topics import agent_topics, outcomes_table, topic_plan
from streams.wiring import Runtime, load_runtime

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> faust.App:
    settings = runtime.settings
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        key_serializer="raw",
        value_serializer="raw",
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        datadir=str(settings.state_dir / "faust" / settings.app_id),  # not the working directory
        producer_acks=-1,
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
    )
    for agent in runtime.agents:
        topic = app.topic(agent_topics(agent, settings).input, key_serializer="raw", value_serializer="raw")
        table = app.Table(outcomes_table(agent), partitions=settings.partitions, key_type=bytes, value_type=bytes)
        app.agent(topic, name=f"keel.{agent.name}")(_handler(app, agent, runtime, OutcomeStore(table)))

    async def close_clients(_sender: Any, **_: Any) -> None:
        await runtime.aclose()

    app.on_before_shutdown.connect(close_clients)  # type: ignore[arg-type]  # mode types want a positional-only sender

    return app


def _handler(
    app: faust.App, agent: Agent, runtime: Runtime, store: OutcomeStore
) -> Callable[[Any], Coroutine[Any, Any, None]]:
    limit = runtime.settings.max_event_bytes

    async def handle(stream: Any) -> None:
        manual = stream.noack()
        async for event in _events(manual):
            source = to_source_record(event.message)
            recorded = store.recorded(event_id_of(runtime.catalogue, source, max_event_bytes=limit))
            if recorded is None:
                outcome = await process(source, agent, runtime.deps)
                emission = runtime.emitter.records(outcome, agent, now_ms=runtime.deps.clock.now_ms())
                await store.record(outcome.trace.event_id, emission.recorded, partition=source.partition)
                await produce_all(app.producer, emission.all())
            else:  # seen before: the recorded outcome again, and no model call
                await produce_all(app.producer, recorded)
            await manual.ack(event)

    handle.__name__ = handle.__qualname__ = f"handle_{agent.name}"
    return handle


async def _events(stream: Any) -> AsyncIterator[Any]:
    async for event in stream.events():
        yield event


def to_source_record(message: Any) -> SourceRecord:
    headers = message.headers or ()
    if isinstance(headers, dict):
        headers = headers.items()
    timestamp = message.timestamp
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(timestamp * 1000) if timestamp is not None else None,
        key=message.key,
        value=message.value if message.value is not None else b"",
        headers=tuple((str(k), v) for k, v in headers),
    )


async def produce_all(producer: Any, records: list[OutRecord]) -> None:
    """Send every record, then wait for all acknowledgements together (no per-record round trip)."""
    pending = [await producer.send(r.topic, r.key, r.value, None, None, list(r.headers)) for r in records]
    await asyncio.gather(*pending)


def run_worker(settings: Settings) -> NoReturn:
    """Load and check everything, create the topics, then hand over to faust until stopped."""
    runtime = load_runtime(settings)
    asyncio.run(ensure_topics(settings.bootstrap_servers, topic_plan(runtime.agents, settings)))
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = create_app(runtime)
    names = ", ".join(agent.name for agent in runtime.agents)
    log.warning("keel worker starting: agents %s on %s", names, settings.bootstrap_servers)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per model call is too much at info
    worker.execute_from_commandline()
