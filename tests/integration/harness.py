"""A worker stack for integration tests: topics in a fresh namespace, a model endpoint, a worker process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from agent_files import write_agents
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families
from review_http import TEST_COST

from connectors.local.daemon import run_sync
from streams.agent.definition import load_agents
from streams.cli.local_stack import worker_process
from streams.cli.publish import publish, publish_raw
from streams.cli.watch import Observed, OutcomeWatcher, Tally, outcome_topics
from streams.contracts.topics import topic_plan
from streams.core.catalogue import Catalogue, load_catalogue
from streams.core.domain import RequestEvent
from streams.core.kafka_security import KafkaSecuritySettings
from streams.core.settings import Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import client_config
from streams.review.users import UserFile
from tests.keel_command import run_keel

AGENTS = ["support_triage", "invoice_extraction"]
OPERATOR, OPERATOR_PASSWORD = "olga", "olga-battery-staple"  # operator of AGENTS in ``keel_cli``'s users file
T = TypeVar("T")


@dataclass
class Stack:
    settings: Settings
    catalogue: Catalogue
    wait_s: float
    worker_env: dict[str, str]
    worker: subprocess.Popen[bytes] | None = None

    def check_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is not None:
            log = self.settings.state_dir / "logs" / f"worker-{self.settings.namespace}.log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"the worker exited with {self.worker.returncode}:\n{tail}")

    @contextlib.contextmanager
    def running_worker(self) -> Iterator[subprocess.Popen[bytes]]:
        with worker_process(self.settings, self.worker_env) as worker:
            self.worker = worker
            try:
                yield worker
                self.check_worker()
            finally:
                self.worker = None

    def topic(self, name: str) -> str:
        return self.settings.topic(name)


@contextlib.contextmanager
def worker_stack(
    bootstrap: str,
    state_dir: Path,
    *,
    provider: str | None,
    base_url: str = "",
    wait_s: float = 90.0,
    start: bool = True,
    web_port: int = 0,
    env: dict[str, str] | None = None,
    reliability: dict[str, Any] | None = None,
    concurrency: dict[str, Any] | None = None,
    budget: dict[str, Any] | None = None,
    handoff: dict[str, dict[str, Any]] | None = None,
    fallback_model: str | None = None,
    namespace: str | None = None,
    security: KafkaSecuritySettings | None = None,
    blocks: dict[str, dict[str, Any]] | None = None,
) -> Iterator[Stack]:
    """Topics in a fresh namespace and (unless ``start`` is false) a worker using ``provider``, running
    the shipped agents with ``reliability`` fields changed: by default without retry tiers, so that a
    transient failure ends in a dead letter at once (tests that want tiers declare short ones). Handoff
    policies are autonomous unless ``handoff`` gives an agent's (see ``write_agents``). With ``provider``
    None the chains keep their own providers (``env`` says where they are)."""
    namespace = namespace or f"it-{uuid.uuid4().hex[:8]}"
    agents_dir = write_agents(
        state_dir / f"agents-{namespace}",
        reliability={"retry_delays_s": [], **(reliability or {})},
        concurrency=concurrency,
        budget=budget,
        handoff=handoff,
        fallback_model=fallback_model,
        blocks=blocks,
    )
    settings = Settings(
        bootstrap_servers=bootstrap,
        namespace=namespace,
        agents_dir=agents_dir,
        provider_override=provider,
        web_port=0,
        state_dir=state_dir,
        **(security.model_dump() if security is not None else {}),  # the stack's own clients (topics, watching)
    )
    catalogue = load_catalogue(settings.schemas_dir)
    plan = topic_plan(load_agents(settings.agents_dir, catalogue), settings)
    run_sync(lambda: ensure_topics(client_config(settings), plan))  # works inside an async test too
    env = {**(env or {}), "KEEL_AGENTS_DIR": str(agents_dir), "KEEL_WEB_PORT": str(web_port)}
    if provider:
        env.update({"KEEL_PROVIDER_OVERRIDE": provider, f"KEEL_PROVIDERS__{provider.upper()}__BASE_URL": base_url})
    stack = Stack(settings, catalogue, wait_s, env)
    if not start:
        yield stack
        return
    with stack.running_worker():
        yield stack


def keel_cli(stack: Stack, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """`keel ARGS` on the stack's namespace and agents, signed in as ``OPERATOR``, an operator of the
    shipped agents in a users file of the stack's own."""
    users = stack.settings.state_dir / f"users-{stack.settings.namespace}.yaml"
    if not users.exists():
        UserFile(users, cost=TEST_COST).put(OPERATOR, password=OPERATOR_PASSWORD, role="operator", agents=AGENTS)
    env = {**os.environ, **stack.worker_env, "KEEL_BOOTSTRAP_SERVERS": stack.settings.bootstrap_servers,
           "KEEL_NAMESPACE": stack.settings.namespace, "KEEL_STATE_DIR": str(stack.settings.state_dir),
           "KEEL_REVIEW_USERS_FILE": str(users), "KEEL_USER": OPERATOR, "KEEL_PASSWORD": OPERATOR_PASSWORD}  # fmt: skip
    return run_keel(*args, env=env, timeout_s=timeout_s)


def aggregator(stack: Stack, **env: str) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """`keel aggregate` for the stack's namespace, with no web server of its own."""
    return worker_process(
        stack.settings, {**stack.worker_env, "KEEL_AGGREGATOR_WEB_PORT": "0", **env}, command="aggregate"
    )


async def run_through(
    stack: Stack,
    *,
    events: dict[str, list[RequestEvent]] | None = None,
    raw: list[tuple[bytes | None, bytes]] | None = None,
    action: Callable[[], Awaitable[object]] | None = None,
    expect: Sequence[str] = (),
    during: Callable[[Tally], object] | None = None,
) -> tuple[list[str], Tally]:
    """Publish (or run ``action``), then read outcomes until every published or ``expect``-ed event has
    ended, or the wait runs out; ``during`` sees the tally after each read. An ``action`` that returns a
    list of event ids expects those too."""
    kafka = client_config(stack.settings)
    watcher = OutcomeWatcher(kafka, stack.catalogue, outcome_topics(stack.settings, AGENTS))
    await watcher.start()
    try:
        ids: list[str] = list(expect)
        if action is not None and isinstance(acted := await action(), list):
            ids += acted
        for topic, batch in (events or {}).items():
            ids += await publish(kafka, stack.topic(topic), stack.catalogue, batch)
        if raw:
            positions = await publish_raw(kafka, stack.topic("support.tickets"), raw)
            ids += [f"undecodable:{t}/{p}/{o}" for t, p, o in positions]
        tally = Tally()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stack.wait_s
        while loop.time() < deadline and not all(tally.ended(i) for i in ids):
            stack.check_worker()
            for observed in await watcher.poll(timeout_s=0.5):
                tally.add(observed)
            if during is not None:
                during(tally)
        for observed in await watcher.poll(timeout_s=0.5):  # usage records written after the outcome
            tally.add(observed)
        return ids, tally
    finally:
        await watcher.stop()


def assert_exactly_one_outcome_and_audit(ids: list[str], tally: Tally) -> None:
    for event_id in ids:
        assert len(tally.outcomes(event_id)) == 1, f"{event_id}: {len(tally.outcomes(event_id))} outcomes"
        assert len(tally.by_kind["audit"].get(event_id, ())) == 1, f"{event_id}: not exactly one audit record"


def assert_one_effective_outcome_and_audit(ids: list[str], tally: Tally) -> int:
    """Every event has exactly one effective outcome and audit record: any more are physical duplicates,
    the same recorded record written again (a redelivery during a rebalance re-emits what the outcome
    store holds; consumers fold by event id). Returns how many such duplicates there were."""
    duplicates = 0
    for event_id in ids:
        for kind, records in (
            ("outcome", tally.outcomes(event_id)),
            ("audit", tally.by_kind["audit"].get(event_id, [])),
        ):
            distinct = {repr((o.kind, o.value)) for o in records}
            assert len(distinct) == 1, f"{event_id}: {len(distinct)} different {kind} records"
            duplicates += len(records) - 1
    return duplicates


async def committed_offsets(
    stack: Stack, topic: str, *, group: str | None = None, wait_s: float = 30
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """The worker's (or ``group``'s) committed offsets of ``topic``'s partitions and their end offsets,
    once they are equal or ``wait_s`` has passed (offsets are committed every few seconds)."""
    return await group_offsets(stack.settings, topic, group or stack.settings.app_id, wait_s=wait_s)


async def group_offsets(
    settings: Settings, topic: str, group: str, *, wait_s: float = 30, nonempty: bool = False
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """``group``'s committed offsets of ``topic``'s partitions (-1: none) and their end offsets, once
    they are equal or ``wait_s`` has passed (one reading if it is under half a second). ``nonempty``:
    only the partitions that had records when this started."""
    kafka = client_config(settings)
    partitions = [TopicPartition(settings.topic(topic), p) for p in range(settings.partitions)]
    consumer = AIOKafkaConsumer(**kafka.kwargs())
    admin = AIOKafkaAdminClient(**kafka.kwargs())
    await consumer.start()
    await admin.start()
    try:
        ends = {tp: end for tp, end in (await consumer.end_offsets(partitions)).items() if end or not nonempty}

        async def committed() -> dict[TopicPartition, int]:
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
            return {tp: meta.offset for tp, meta in offsets.items() if tp in ends}

        return await polled(committed, lambda offsets: offsets == ends, wait_s=wait_s), ends
    finally:
        await consumer.stop()
        await admin.close()


async def polled(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, wait_s: float, every_s: float = 0.5
) -> T:
    """``await read()`` every ``every_s`` until ``done`` holds of what it returned or the next reading
    would come after ``wait_s``; what it returned last (at least one reading, e.g. with ``wait_s=0``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        value = await read()
        if done(value) or loop.time() + every_s > deadline:
            return value
        await asyncio.sleep(every_s)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def get_when_up(url: str, *, tries: int = 40, auth: tuple[str, str] | None = None) -> httpx.Response:
    """GET a page of a web server that may still be starting."""
    async with httpx.AsyncClient(auth=auth) as client:
        for _ in range(tries - 1):
            try:
                return await client.get(url)
            except httpx.ConnectError:
                await asyncio.sleep(0.5)
        return await client.get(url)


async def scrape_metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample on a worker's /metrics page (served as Prometheus text), by name and labels."""
    response = await get_when_up(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def until(done: Callable[[], bool], *, what: str, wait_s: float = 30) -> None:
    """Wait for ``done`` (polled), or fail saying ``what`` never came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while not done():
        assert loop.time() < deadline, f"no {what} after {wait_s:g} s"
        await asyncio.sleep(0.2)


def model_calls(sim_url: str) -> int:
    """How many chat requests the provider simulator has answered so far."""
    return int(httpx.get(sim_url.removesuffix("/v1") + "/sim/stats").json()["requests_total"])


def only_outcome(tally: Tally, event_id: str) -> Observed:
    [outcome] = tally.outcomes(event_id)
    return outcome
