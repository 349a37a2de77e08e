"""The worker: a thin shell that feeds input records to the pipeline and produces its records.

For each agent, the worker reads the input topic, each retry tier topic (streams/contracts/retry.py) and the
parking topic, with Keel's own consumer in batches (streams/kafka/intake.py). Events run concurrently, in
order per key, bounded and acked in offset order (streams/kafka/inflight.py). An event's outcome is decided
once (the pipeline), recorded in the outcome store, then produced; the event is acked (and so its
offset becomes committable) only after all of that is acknowledged by the broker. A crash never
commits past an event whose outcome is not durably written, and a redelivered event re-emits its
recorded outcome without a model call. The faust app around it serves the web pages and runs the
worker's tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import faust
from aiokafka import TopicPartition

from streams.agent.definition import Agent
from streams.apps import faust_app
from streams.apps.faust_app import exit_for_restart
from streams.apps.metrics import LiveSources, WorkerMetrics
from streams.apps.registry.lookup import resolve_schema_id
from streams.apps.toolbox import context_tables
from streams.apps.wiring import Runtime, adapted, load_runtime
from streams.apps.worker.budget_client import BudgetClient
from streams.apps.worker.budget_owner import BudgetOwner, run_owner
from streams.apps.worker.live_agents import LiveAgents
from streams.contracts import acls
from streams.contracts.control import PLAIN, Control, read_control
from streams.contracts.emit import oversized
from streams.contracts.park import parked_arrival
from streams.contracts.retry import Arrival, arrival
from streams.contracts.topics import agent_topics, outcomes_topic, topic_plan
from streams.core.domain import DeadLetter, SourceRecord
from streams.core.errors import DecodeError, EventIdConflict
from streams.core.settings import Settings
from streams.kafka.acl_admin import check_grants
from streams.kafka.admin import ensure_topics
from streams.kafka.agent_configs import ConfigFeed
from streams.kafka.connection import client_config
from streams.kafka.inflight import Inflight, Limit, lane_of
from streams.kafka.intake import Ack, Deliver, Intake
from streams.kafka.outcome_store import OutcomeStore, Recorded, input_digest
from streams.kafka.producer import RecordProducer, until_written
from streams.kafka.skipped import SkippedRecords
from streams.kafka.topic_table import TopicTable
from streams.pipeline.decode import Decoded, read_source, refused
from streams.pipeline.limiter import Limiter
from streams.pipeline.process import process

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> faust.App:
    settings = runtime.settings
    app = faust_app.new_app(settings, app_id=settings.app_id, web_port=settings.web_port, consumes=False)
    kafka = client_config(settings)
    producer = RecordProducer(kafka, request_timeout_s=settings.produce_timeout_s)
    inflight = Inflight(settings.max_in_flight)
    metrics = WorkerMetrics(runtime.pricing)
    runtime, budgets = _with_budgets(app, runtime, producer, metrics.skipped)
    tables = context_tables(runtime.agents, settings, kafka, metrics.skipped)
    runtime = dataclasses.replace(runtime, deps=dataclasses.replace(runtime.deps, tables=tables))
    stores: dict[str, OutcomeStore] = {}  # by every topic the store's agent reads
    routes: dict[str, Deliver] = {}
    shells: list[_Shell] = []
    live = LiveAgents(runtime.agents, runtime.catalogue, providers=runtime.deps.models, adapt=adapted(settings))
    configs = ConfigFeed(kafka, runtime.catalogue, settings, live.take, metrics.skipped)
    for agent in runtime.agents:
        topics = agent_topics(agent, settings)
        store = OutcomeStore(kafka, outcomes_topic(settings, agent), producer.send_one)
        limit = Limit(agent.definition.concurrency.max_in_flight or settings.max_in_flight)
        shell = _Shell(agent, live, runtime, store, producer, inflight, limit, metrics)
        shells.append(shell)
        waits = [(name, _tier_wait(shell, tier)) for tier, name in enumerate((topics.input, *topics.retries))]
        for name, wait in [*waits, (topics.parked, _parked_wait(shell, budgets))]:
            routes[name] = _deliver(shell, wait)
            stores[name] = store
    intake = Intake(
        settings,
        routes,
        inflight,
        assigned=_on_assign(runtime.limiter),
        revoked=_on_revoke(stores, producer),
        fatal=exit_for_restart,
    )

    app.task(functools.partial(_read_topics, configs, list(tables.values()), intake))
    runtime.limiter.observer = metrics.rate_limits
    runtime.slots.observer = metrics.model_queue
    deps = runtime.deps
    metrics.watch(
        LiveSources(
            in_flight=lambda: [(shell.agent.name, shell.limit.in_flight) for shell in shells],
            circuits=lambda: deps.breakers.snapshot(deps.clock.monotonic()),
            lag=intake.lag,
            budgets=budgets.owner.remaining if budgets is not None else list,
        )
    )

    faust_app.serve_metrics(app, metrics.exposition)

    @app.page("/keel/circuits/")
    async def circuits(web: Any, request: Any) -> Any:
        """The circuit breakers' state, for on-call engineers and probes (see streams/pipeline/circuit.py)."""
        now = runtime.deps.clock.monotonic()
        views = [dataclasses.asdict(view) for view in runtime.deps.breakers.snapshot(now)]
        return web.json({"circuits": views})

    async def close_clients(_sender: Any, **_: Any) -> None:
        abandoned = await inflight.drain(grace_s=settings.revoke_grace_s)
        if abandoned:
            log.warning("stopping: %d in-flight events did not end in time; they run again after a restart", abandoned)
        await intake.stop()
        await configs.stop()
        for table in tables.values():
            await table.stop()
        await runtime.aclose()
        if budgets is not None:
            await budgets.client.stop()
        await producer.stop()
        for store in set(stores.values()):
            store.close()

    app.on_before_shutdown.connect(close_clients)  # type: ignore[arg-type]  # mode types want a positional-only sender
    faust_app.exit_on_crash(app)
    return app


@dataclass(frozen=True, slots=True)
class _Budgets:
    client: BudgetClient  # the worker's side: reservations, and parked events' waits
    owner: BudgetOwner  # the budgets this worker decides (streams/apps/worker/budget_owner.py)


def _with_budgets(
    app: faust.App, runtime: Runtime, producer: RecordProducer, skipped: SkippedRecords
) -> tuple[Runtime, _Budgets | None]:
    """With budgets declared: the runtime whose calls reserve through a budget client, and this
    worker's budget owner, running for as long as the app does."""
    if not runtime.budgets:
        return runtime, None
    settings, clock = runtime.settings, runtime.deps.clock
    client = BudgetClient(
        settings,
        runtime.catalogue,
        producer,
        budgets=runtime.budgets,
        pricing=runtime.pricing,
        clock=clock,
        skipped=skipped,
    )
    owner = BudgetOwner(settings, runtime.catalogue, producer, clock=clock, skipped=skipped)

    async def own_budgets() -> None:
        await run_owner(owner)

    app.task(own_budgets)

    return dataclasses.replace(runtime, deps=dataclasses.replace(runtime.deps, budgets=client)), _Budgets(client, owner)


def _on_revoke(
    stores: dict[str, OutcomeStore], producer: RecordProducer
) -> Callable[[set[TopicPartition]], Awaitable[None]]:
    """Revoked partitions, once their in-flight work has ended or been abandoned (streams/kafka/intake.py):
    records already sent are flushed before the offsets are committed, so the next owner's store load
    sees them; the stores forget the partitions."""

    async def revoked(tps: set[TopicPartition]) -> None:
        await producer.flush()
        for tp in tps:
            stores[tp.topic].forget([tp.partition])

    return revoked


def _on_assign(limiter: Limiter) -> Callable[[set[TopicPartition]], None]:
    """Each rebalance gives this worker a new share of every rate limit: the part of the limit's
    partitions it now owns (the whole new assignment). The first one, when everything has started,
    freezes the start-up heap (streams/apps/faust_app.py)."""

    def assigned(tps: set[TopicPartition]) -> None:
        faust_app.freeze_start_up_heap()
        limiter.assign((tp.topic, tp.partition) for tp in tps)

    return assigned


async def _read_topics(configs: ConfigFeed, tables: list[TopicTable], intake: Intake) -> None:
    try:
        await configs.start()  # the live versions first: no event runs on a version it should not
        configs.following.add_done_callback(_config_feed_ended)  # type: ignore[union-attr]
        for table in tables:  # and the context lookups' tables, read to their end
            await table.start()
            table.following.add_done_callback(_config_feed_ended)  # type: ignore[union-attr]
        await intake.run()
    except Exception as exc:  # a bug, or a consumer that cannot go on: never carry on without reading
        exit_for_restart("reading the agents' topics failed", exc)


def _config_feed_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        exit_for_restart(f"following {task.get_name()} failed", task.exception() or RuntimeError("it ended"))


@dataclass(frozen=True, slots=True)
class _Shell:
    """What the topics of one Keel agent (input, retry tiers, parking) share. ``agent``: as its file
    declares it (topics, lanes, limits); ``live``: the version that decides each event."""

    agent: Agent
    live: LiveAgents
    runtime: Runtime
    store: OutcomeStore
    producer: RecordProducer
    inflight: Inflight
    limit: Limit
    metrics: WorkerMetrics


Wait = Callable[[SourceRecord], Awaitable[Arrival]]  # the event to run, once it may run


def _deliver(shell: _Shell, wait: Wait) -> Deliver:
    """One topic's records: each waits (until due, or until its budget has room) before it takes an
    in-flight slot, then runs while there is room."""
    ordering, inflight, limit = shell.agent.definition.concurrency.ordering, shell.inflight, shell.limit

    async def deliver(record: Any, ack: Ack) -> None:
        arrived = await wait(source_record(record))
        tp = (record.topic, record.partition)
        lane = lane_of(ordering, tp, record.key, record.offset)
        await inflight.start(
            tp, record.offset, lane, functools.partial(_run_one, shell, arrived), ack, agent_limit=limit
        )

    return deliver


def _tier_wait(shell: _Shell, tier: int) -> Wait:
    """Tier records fall due in order (their timestamp plus the tier's delay); input records at once."""
    delay_s = shell.agent.definition.reliability.retry_delays_s[tier - 1] if tier else 0.0
    clock = shell.runtime.deps.clock

    async def wait(delivered: SourceRecord) -> Arrival:
        arrived = arrival(delivered, tier=tier, delay_s=delay_s)
        if arrived.due_ms:
            await clock.sleep(max(0, arrived.due_ms - clock.now_ms()) / 1000)
        return arrived

    return wait


def _parked_wait(shell: _Shell, budgets: _Budgets | None) -> Wait:
    """A parked event waits until a call like its next one fits its budgets again: the period ended,
    or the budget was raised. With no budgets declared (any more), it runs at once."""
    runtime = shell.runtime

    async def wait(delivered: SourceRecord) -> Arrival:
        arrived, parking = parked_arrival(delivered)
        if parking is None or budgets is None:
            return arrived
        max_bytes, clock = runtime.settings.max_event_bytes, runtime.deps.clock
        decoded = read_source(runtime.catalogue, arrived.source, max_event_bytes=max_bytes, clock=clock)
        if decoded.event is not None:  # else it will be a dead letter: no budget needed for that
            await budgets.client.wait_for_room(shell.agent, decoded.event, until_ms=parking.until_ms)
        return arrived

    return wait


async def _run_one(shell: _Shell, arrived: Arrival, decided: Callable[[], None]) -> None:
    try:
        await handle_one(shell, arrived, decided=decided)
    except Exception as exc:  # a bug outside the pipeline: never ack past this event
        exit_for_restart(f"handling {arrived.source.position} (tier {arrived.tier}) failed", exc)


async def handle_one(shell: _Shell, arrived: Arrival, *, decided: Callable[[], None]) -> None:
    """Decide the event's outcome once, record it, then write it; a redelivery re-emits the record.
    ``decided`` is called once no more model calls are to be made for the event (its slots go back).

    A tier or parked record keeps its input partition's number, so the event's store entry is in the
    same partition whatever the topic it is read from."""
    agent, runtime, store, producer = shell.agent, shell.runtime, shell.store, shell.producer
    source, clock = arrived.source, runtime.deps.clock
    await resolve_schema_id(runtime.catalogue, source.value, clock)  # client mode: a new id, off the loop
    admitted = await _admit(shell, arrived)
    recorded, control = admitted.recorded, admitted.control
    if recorded is not None and recorded.settles(admitted.pass_number, replay=control.replay):  # seen before
        decided()
        await until_written(lambda: producer.send_all(recorded.records), what="recorded outcome records")
        shell.metrics.re_emitted.labels(agent.name).inc()
        return
    agent = admitted.agent or shell.live.pick(agent.name, admitted.decoded.event_id)  # kept until the event ends
    outcome = await process(
        source,
        agent,
        runtime.deps,
        tier=arrived.tier,
        earlier=arrived.earlier,
        decoded=admitted.decoded,
        pass_number=admitted.pass_number,
        skip_models=control.skip_models,
        journal=store.journal(admitted.decoded.event_id, partition=source.partition),
        generation=control.pass_number,  # 0, or the pass of a re-run or replay: a new decision
    )
    decided()
    emission = runtime.emitter.records(outcome, agent, now_ms=clock.now_ms())
    if (too_large := oversized(emission)) is not None:  # no topic would take it: say so instead
        outcome = DeadLetter(outcome.trace, too_large)
        emission = runtime.emitter.records(outcome, agent, now_ms=clock.now_ms())
    entry = Recorded(emission.recorded, outcome.trace.pass_number, input_digest(source), source.position)
    event_id, partition = admitted.decoded.event_id, source.partition
    await until_written(lambda: store.record(event_id, entry, partition=partition), what="the outcome store")
    await until_written(lambda: producer.send_all(emission.all()), what="outcome records")
    shell.metrics.observe(agent.name, outcome)


@dataclass(frozen=True, slots=True)
class _Admitted:
    """An input record as the worker takes it: decoded (or refused at the door, then a decode failure
    keyed by its position), the pass it runs as, what its control headers ask, and its store entry."""

    decoded: Decoded
    control: Control
    pass_number: int
    recorded: Recorded | None
    agent: Agent | None = None  # the version a replay is pinned to


async def _admit(shell: _Shell, arrived: Arrival) -> _Admitted:
    """Control headers count only when Keel signed them (streams/contracts/control.py); a record that reuses a
    recorded event id for another input never receives that event's outcome (streams/kafka/outcome_store.py)."""
    runtime, store, source = shell.runtime, shell.store, arrived.source
    decoded = read_source(
        runtime.catalogue, source, max_event_bytes=runtime.settings.max_event_bytes, clock=runtime.deps.clock
    )
    control, pinned = PLAIN, None
    if decoded.event is not None:  # an undecodable record is a dead letter whatever its headers ask
        try:
            control = read_control(runtime.control_keys, source)
            if control.config_version is not None:
                pinned = shell.live.pinned(shell.agent.name, control.config_version)
        except DecodeError as exc:
            decoded, control = refused(source, exc, ms=decoded.ms), PLAIN
    if control.ignored:
        shell.metrics.control_ignored.labels(shell.agent.name).inc()
    recorded = await store.recorded(decoded.event_id, partition=source.partition)
    if recorded is not None and not recorded.same_input(source):
        first = recorded.origin or "an earlier position"
        conflict = EventIdConflict(
            f"event id {decoded.event_id!r} at {source.position} is recorded for another input, first at {first}"
        )
        decoded, control, pinned = refused(source, conflict, ms=decoded.ms), PLAIN, None
        recorded = await store.recorded(decoded.event_id, partition=source.partition)
    # A waiting record's pass is in its own headers (streams/contracts/retry.py); a re-run or replay asks for its own.
    return _Admitted(decoded, control, max(arrived.pass_number, control.pass_number), recorded, pinned)


def source_record(record: Any) -> SourceRecord:
    """An aiokafka record (its timestamp in ms) as the pipeline reads it."""
    return SourceRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value if record.value is not None else b"",
        headers=tuple(record.headers),
    )


def run_worker(settings: Settings, runtime: Runtime | None = None) -> NoReturn:
    """Load and check everything, create the topics, then hand over to the faust app until stopped. A
    ``runtime`` given (the benchmark's, with a model stand-in) is used as it is."""
    runtime = runtime or load_runtime(settings)
    kafka = client_config(settings)
    # before anything retries: a missing ACL is one error naming it (streams/contracts/acls.py)
    check_grants(
        kafka, [g for agent in runtime.agents for g in acls.worker(agent, settings).grants], what="keel worker"
    )
    asyncio.run(ensure_topics(kafka, topic_plan(runtime.agents, settings)))
    app = create_app(runtime)
    faust_app.run(app, settings, what=f"worker: agents {', '.join(agent.name for agent in runtime.agents)}")
