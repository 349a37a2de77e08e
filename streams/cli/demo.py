"""`keel demo` and `keel run`: the whole path, from sample events to outcomes, on the local parts.

Starts what is missing (local Kafka, the model server or the simulator, the example CRM the shipped
connector reaches, a worker process), publishes sample events, reads the outcome topics until every
event has ended, and prints a summary whose last line is JSON. `keel run` (behind `make run`) does the
same with a live view of each outcome (and of each event's tool calls), and runs `keel review serve`
with a reviewer of its own; when events wait for review and the run has a terminal, it keeps
everything up until Enter, so they can be decided in the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

from connectors.local import kafka_local, llama_local
from connectors.local.daemon import run_sync
from streams.apps.registry.client_mode import load_schemas
from streams.apps.wiring import load_runtime
from streams.cli.local_stack import crm_process, say, simulator_process, worker_process
from streams.cli.publish import load_samples, publish, take
from streams.cli.watch import Observed, OutcomeWatcher, Tally, outcome_topics
from streams.contracts.topics import agent_topics, topic_plan
from streams.core.catalogue import Catalogue
from streams.core.settings import REPO_ROOT, Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import check_access, client_config
from streams.review.users import UserFile

SAMPLES_DIR = REPO_ROOT / "deploy" / "samples"
RUN_REVIEWER = "reviewer"
DEFAULT_BOOTSTRAP = Settings.model_fields["bootstrap_servers"].default
DEFAULT_CONNECTORS = Settings.model_fields["connectors_dir"].default


@dataclass(frozen=True, slots=True)
class DemoOptions:
    events: int
    provider: str  # sim | local
    timeout_s: float
    live: bool


def run_demo(settings: Settings, options: DemoOptions) -> int:
    # Each run gets topics of its own unless a namespace is set, so the backlog of an earlier run that
    # was interrupted never delays this one (and this one's counts are its own).
    namespace = settings.namespace or f"run-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    with local_services(settings, options.provider) as worker_env:
        settings = settings.model_copy(update={"provider_override": options.provider, "namespace": namespace})
        say(f"namespace {namespace}: topics {namespace}.<name>, consumer group keel-{namespace}")
        with contextlib.ExitStack() as processes:
            processes.enter_context(worker_process(settings, worker_env))
            processes.enter_context(worker_process(settings, worker_env, command="aggregate"))
            review = processes.enter_context(review_service(settings, worker_env)) if options.live else None
            summary = asyncio.run(_publish_and_watch(settings, options))
            if review is not None and summary["review"]:
                say(f"{summary['review']} events wait for a human: review them at {review}")
                if sys.stdin.isatty():
                    input("keel: press Enter to stop everything ...")
        say(f"cost and latency per window (with Kafka running): KEEL_NAMESPACE={namespace} keel usage --period minute")
    print(orjson.dumps(summary).decode())
    return 0 if summary["missing"] == 0 and summary["audit"] == summary["events"] else 1


async def publish_samples(settings: Settings, agent_name: str, count: int) -> list[str]:
    catalogue, agents = load_schemas(settings.model_copy(update={"agents": [agent_name]}))
    samples = load_samples(SAMPLES_DIR / f"{agent_name}.jsonl")
    topic = agent_topics(agents[0], settings).input
    return await publish(client_config(settings), topic, catalogue, take(samples, count))


@contextlib.contextmanager
def review_service(settings: Settings, env: dict[str, str]) -> Iterator[str]:
    """`keel review serve` for the run, signed in to by an admin of the run's own (a fresh password, in a
    users file of the run's, never the deployment's): yields where and how to sign in."""
    users = UserFile(settings.state_dir / f"reviewers-{settings.namespace}.yaml")
    password = secrets.token_urlsafe(12)
    users.put(RUN_REVIEWER, password=password, role="admin", agents=[])
    host, port = settings.review_web_host, settings.review_web_port
    env = {
        **env,
        "KEEL_REVIEW_USERS_FILE": str(users.path),
        "KEEL_REVIEW_WEB_HOST": host,
        "KEEL_REVIEW_WEB_PORT": str(port),
    }
    with worker_process(settings, env, command="review", args=("serve",)):
        sign_in = f"http://{host}:{port}/ (user {RUN_REVIEWER}, password {password})"
        say(f"review queue: {sign_in}")
        yield sign_in


@contextlib.contextmanager
def local_services(settings: Settings, provider: str) -> Iterator[dict[str, str]]:
    """Start the broker and the model endpoint when they are not running; stop what we started."""
    stack = contextlib.ExitStack()
    with stack:
        env = {"KEEL_PROVIDER_OVERRIDE": provider, "KEEL_WEB_PORT": "0"}
        answers = run_sync(lambda: kafka_local.probe(client_config(settings)))
        if not answers and settings.bootstrap_servers == DEFAULT_BOOTSTRAP:
            broker = kafka_local.LocalKafka()
            if not kafka_local.status(broker).ready:
                say("starting local Kafka (first run downloads its jars with Maven) ...")
                kafka_local.start(broker)
                stack.callback(kafka_local.stop, broker)
        # an existing cluster that refuses this client's credentials: one clear error, not a retry loop
        run_sync(lambda: check_access(client_config(settings), timeout_s=settings.kafka_connect_check_s))
        if provider == "sim":
            env["KEEL_PROVIDERS__SIM__BASE_URL"] = stack.enter_context(
                simulator_process(settings.state_dir, "--latency-ms", "20")
            )
        else:
            server = llama_local.LocalModel()
            if not llama_local.status(server).ready:
                say("starting the local model server (llama.cpp, SmolLM2-135M-Instruct) ...")
                llama_local.start(server)
                stack.callback(llama_local.stop, server)
            env["KEEL_PROVIDERS__LOCAL__BASE_URL"] = server.base_url
        if settings.connectors_dir == DEFAULT_CONNECTORS:
            env |= stack.enter_context(example_crm(settings))
        yield env


@contextlib.contextmanager
def example_crm(settings: Settings) -> Iterator[dict[str, str]]:
    """The CRM the shipped ``crm`` connector reaches (connectors/crm/), with a token of the run's own,
    and a copy of the connector files that points ``crm`` at it: yields the worker's environment."""
    token = secrets.token_urlsafe(18)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with (
        crm_process(settings.state_dir, token) as url,
        tempfile.TemporaryDirectory(dir=settings.state_dir, prefix="run-connectors-") as folder,
    ):
        for source in settings.connectors_dir.glob("*.yaml"):
            definition = yaml.safe_load(source.read_text())
            if isinstance(definition, dict) and definition.get("name") == "crm":
                definition["base_url"] = url
            (Path(folder) / source.name).write_text(yaml.safe_dump(definition, allow_unicode=True))
        say(f"example CRM (connectors/crm/, the crm connector's tools) at {url}")
        yield {"CRM_API_TOKEN": token, "KEEL_CONNECTORS_DIR": folder}


async def _publish_and_watch(settings: Settings, options: DemoOptions) -> dict[str, int]:
    runtime = load_runtime(settings, tools=False)
    await ensure_topics(client_config(settings), topic_plan(runtime.agents, settings))
    watcher = OutcomeWatcher(
        client_config(settings), runtime.catalogue, outcome_topics(settings, [a.name for a in runtime.agents])
    )
    await watcher.start()
    try:
        event_ids = await _publish_share(settings, runtime.catalogue, [a.name for a in runtime.agents], options.events)
        say(f"published {len(event_ids)} events; waiting for their outcomes ...")
        tally = await _watch(watcher, event_ids, options, sys.stdout if options.live else None)
    finally:
        await watcher.stop()
        await runtime.aclose()
    summary = tally.summary(event_ids)
    say(
        f"{summary['events']} events: {summary['results']} results, {summary['review']} for review, "
        f"{summary['dead_letters']} dead letters, {summary['missing']} missing; "
        f"{summary['audit']} audited, {summary['usage']} usage records"
    )
    return summary


async def _publish_share(settings: Settings, catalogue: Catalogue, agent_names: list[str], total: int) -> list[str]:
    ids: list[str] = []
    for index, name in enumerate(agent_names):
        share = total // len(agent_names) + (1 if index < total % len(agent_names) else 0)
        if share:
            ids += await publish_samples(settings, name, share)
    return ids


async def _watch(watcher: OutcomeWatcher, event_ids: list[str], options: DemoOptions, out: IO[str] | None) -> Tally:
    tally, expected = Tally(), set(event_ids)
    open_ids = set(event_ids)
    shown: set[str] = set()  # events with an outcome on screen (a flagged one has two lines)
    deadline = time.monotonic() + options.timeout_s
    while open_ids and time.monotonic() < deadline:
        for observed in await watcher.poll(timeout_s=0.5):
            if observed.event_id not in expected:
                continue
            tally.add(observed)
            if tally.ended(observed.event_id):
                open_ids.discard(observed.event_id)
            if out is not None and observed.kind in ("result", "review", "dead_letter"):
                shown.add(observed.event_id)
                print(f"[{len(shown):>4}/{len(expected)}] {describe(observed)}", file=out, flush=True)
            elif out is not None and observed.kind == "audit" and (calls := tool_calls(observed.value)):
                print(f"       {observed.event_id[:8]} tools: {calls}", file=out, flush=True)
    # a little longer, so usage records written after the last outcome are counted too
    for observed in await watcher.poll(timeout_s=1.0):
        if observed.event_id in expected:
            tally.add(observed)
    return tally


def describe(observed: Observed) -> str:
    value = observed.value
    if observed.kind == "dead_letter":
        return (
            f"DEAD LETTER {value['agent']} {observed.event_id[:8]} at {value['stage']}: "
            f"{value['reason']}: {_clip(value['message'], 100)}"
        )
    if observed.kind == "review":  # held (or flagged) for a human: why, not the output
        route, why = value.get("route", "review"), value.get("rule") or value["reason"]
        return f"REVIEW ({route}) {value['agent']} {value['business_key']}: {why}: {_clip(value['message'], 100)}"
    fields = ", ".join(f"{k}={_clip(str(v), 40)}" for k, v in list(value["output"].items())[:3])
    return f"{observed.kind.upper()} {value['agent']} {value['business_key']}: {fields}"


def tool_calls(audit: dict[str, Any]) -> str:
    """An event's tool calls in order, from its audit record (empty: it made none)."""
    calls = [a for a in audit.get("attempt_log") or () if a.get("purpose") in ("tool", "context")]
    return " -> ".join(f"{a['provider']}.{a['model']} {a['outcome']} ({a['latency_ms']:.0f} ms)" for a in calls)


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
