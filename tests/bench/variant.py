"""One benchmark variant in a process of its own: `raw`, `faust` or `keel`, until it is killed.

Every variant does the same work per event with the same in-process model stand-in: decode the request,
render the prompt, "call" the model, parse and validate the answer (Keel's pure ``process``), and
encode and produce the result, audit and usage records (Keel's pure ``Emitter``). What differs is
everything around that work: the Kafka loop, acks and commits, and Keel's outcome store and lanes.

    python tests/bench/variant.py keel    # settings from KEEL_* variables; BENCH_LATENCY_MS for the model
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import replace

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.apps.wiring import Runtime, load_runtime
from streams.apps.worker.shell import run_worker, source_record
from streams.contracts.topics import AUDIT, USAGE, agent_topics
from streams.core.domain import SourceRecord
from streams.core.ports.model import ModelRequest, ModelResponse
from streams.core.settings import Settings
from streams.pipeline.process import process

ANSWER = (
    '{"category": "billing", "priority": "high", "summary": "The customer was charged twice.", '
    '"suggested_reply": "Sorry about that, we are refunding the second charge.", "confidence": 0.9}'
)


class StandInModel:
    """Answers at once, or after a fixed latency: the model's cost without its HTTP cost."""

    provider = "bench"

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return ModelResponse(ANSWER, "stand-in", 120, 40, self.latency_s, "stop")

    async def aclose(self) -> None:
        return None


def bench_runtime(settings: Settings) -> Runtime:
    runtime = load_runtime(settings)
    model = StandInModel(float(os.environ.get("BENCH_LATENCY_MS", "0")) / 1000)
    return replace(runtime, deps=replace(runtime.deps, models={settings.provider_override or "bench": model}))


async def raw(runtime: Runtime) -> None:
    """As fast as plain aiokafka allows: batches in, every record sent, acks awaited and committed per batch."""
    settings, [agent] = runtime.settings, runtime.agents
    consumer = AIOKafkaConsumer(
        agent_topics(agent, settings).input,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.app_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=1000,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
    )
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            sent = []
            for messages in batches.values():
                for message in messages:
                    outcome = await process(source_record(message), agent, runtime.deps)
                    emission = runtime.emitter.records(outcome, agent, now_ms=int(time.time() * 1000))
                    for r in emission.all():
                        sent.append(await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)))
            if sent:
                await asyncio.gather(*sent)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def plain_faust(runtime: Runtime) -> None:
    """A faust agent written the usual way: one event at a time, records sent through faust's producer."""
    settings, [agent] = runtime.settings, runtime.agents
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap_servers}",
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=str(settings.state_dir / "faust" / settings.app_id),
    )
    topics = agent_topics(agent, settings)
    source = app.topic(topics.input, key_serializer="raw", value_serializer="raw")
    sinks = {
        name: app.topic(name, key_serializer="raw", value_serializer="raw")
        for name in (topics.results, topics.dlq, topics.review, settings.topic(AUDIT), settings.topic(USAGE))
    }

    @app.agent(source)
    async def handle(stream: faust.StreamT) -> None:
        async for event in stream.events():
            outcome = await process(faust_source(event.message), agent, runtime.deps)
            emission = runtime.emitter.records(outcome, agent, now_ms=int(time.time() * 1000))
            for r in emission.all():
                await sinks[r.topic].send(key=r.key, value=r.value, headers=list(r.headers))

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def faust_source(message: faust.types.Message) -> SourceRecord:
    """A faust message (its timestamp in seconds, its headers a list or a dict) as the pipeline reads it."""
    headers = message.headers or ()
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000),
        key=message.key,
        value=message.value or b"",
        headers=tuple(headers.items() if isinstance(headers, dict) else headers),
    )


def main(variant: str) -> None:
    settings = Settings()
    runtime = bench_runtime(settings)
    if variant == "raw":
        asyncio.run(raw(runtime))
    elif variant == "faust":
        plain_faust(runtime)
    else:
        run_worker(settings, runtime)


if __name__ == "__main__":
    main(sys.argv[1])
