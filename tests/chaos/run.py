"""`make chaos`: fault injection against a real local Kafka broker and the provider simulator.

Each scenario starts from N seeded events with unique ids in a fresh namespace, runs workers while a
fault is injected, waits until every event has ended, then reads every outcome topic from the start and
checks the invariants: nothing lost, one effective outcome per event, an audit record per event, and no
model call for an event whose outcome was already recorded. Prints a table, then one JSON line; exits
non-zero when an invariant fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from connectors.crm.customers import Customers
from connectors.crm.server import CrmState, start_crm
from connectors.local import kafka_local
from streams.agent.definition import load_agents
from streams.cli.local_stack import simulator_process, terminate, worker_process
from streams.cli.publish import load_samples, publish, publish_raw, take
from streams.cli.watch import OutcomeWatcher, Tally, outcome_topics
from streams.contracts.topics import topic_plan
from streams.core.catalogue import Catalogue, load_catalogue
from streams.core.settings import REPO_ROOT, Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import client_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, run as a script
from agent_files import write_agents

CHAOS_PORT = 29392
CRM_TOKEN = "chaos-crm-token"
AGENTS = ["support_triage", "invoice_extraction"]
SAMPLES = REPO_ROOT / "deploy" / "samples"


@dataclass
class Scenario:
    name: str
    events: int
    sim: list[str]  # simulator options
    disrupt: Callable[[Run], Awaitable[None]] | None = None
    poison_every: int = 0  # one raw garbage record after every n events
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    deletes_outcomes: bool = False  # the disruption deletes an outcome topic, and the outcomes in it
    tools: bool = False  # support_triage opens a ticket in the loopback CRM for every event (a write tool)


@dataclass
class Run:
    scenario: Scenario
    settings: Settings
    catalogue: Catalogue
    broker: kafka_local.LocalKafka
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    ended: int = 0

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = self.stack.enter_context(worker_process(self.settings, self.env))
        self.workers.append(worker)
        return worker

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        worker.kill()
        worker.wait()


# --- disruptions -------------------------------------------------------------------------------


async def wait_for_progress(run: Run, fraction: float, *, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while run.ended < run.scenario.events * fraction and time.monotonic() < deadline:
        await asyncio.sleep(0.1)


async def kill_during_calls(run: Run) -> None:
    for fraction in (0.15, 0.35, 0.55):
        await wait_for_progress(run, fraction)
        run.kill(run.workers[-1])
        run.start_worker()


async def kill_before_commit(run: Run) -> None:
    await wait_for_progress(run, 0.5)  # commits are 60 s apart: everything so far is uncommitted
    run.kill(run.workers[-1])
    run.start_worker()


async def sigterm_in_flight(run: Run) -> None:
    await wait_for_progress(run, 0.3)
    terminate(run.workers[-1])
    run.start_worker()


async def kill_the_broker(run: Run) -> None:
    await wait_for_progress(run, 0.3)
    kafka_local.stop(run.broker, force=True)
    await asyncio.sleep(3)
    await asyncio.to_thread(kafka_local.start, run.broker)


async def rebalance_churn(run: Run) -> None:
    second = run.workers[-1]
    for fraction in (0.2, 0.4, 0.6):
        await wait_for_progress(run, fraction)
        terminate(second)
        await asyncio.sleep(1)
        second = run.start_worker()


async def outcome_topic_missing(run: Run) -> None:
    await wait_for_progress(run, 0.2)
    results = run.settings.topic("support_triage.results")
    admin = AIOKafkaAdminClient(bootstrap_servers=run.settings.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([results])
    finally:
        await admin.close()
    await asyncio.sleep(6)
    await ensure_topics(client_config(run.settings), [s for s in plan(run) if s.name == results])


SCENARIOS = [
    Scenario("kill -9 worker during model calls (x3)", 300, ["--latency-ms", "60"], kill_during_calls),
    Scenario(
        "kill -9 after outcomes, before commit", 300, ["--latency-ms", "20"], kill_before_commit,
        env={"KEEL_COMMIT_INTERVAL_S": "60"},
    ),
    Scenario("SIGTERM with work in flight", 200, ["--latency-ms", "150"], sigterm_in_flight),
    Scenario("kill -9 broker and restart", 300, ["--latency-ms", "30"], kill_the_broker),
    Scenario("two workers, rebalance churn", 300, ["--latency-ms", "40"], rebalance_churn, workers=2),
    Scenario(
        "provider faults", 300,
        ["--latency-ms", "20", "--p-5xx", "0.3", "--p-timeout", "0.02", "--slow-s", "5", "--p-hang", "0.02",
         "--hang-s", "5", "--p-429", "0.05", "--retry-after-s", "0.2", "--p-malformed", "0.05",
         "--p-schema-violation", "0.05", "--seed", "3"],
    ),
    Scenario(
        "kill -9 while events wait in retry tiers (x3)", 300, ["--latency-ms", "30", "--p-5xx", "0.5", "--seed", "9"],
        kill_during_calls, env={"KEEL_CIRCUIT_COOLDOWN_S": "2"},
    ),
    Scenario("poison pills mixed in", 300, ["--latency-ms", "10"], poison_every=10),
    Scenario("kill -9 worker during tool calls (x3)", 200, ["--latency-ms", "40"], kill_during_calls, tools=True),
    Scenario(
        "outcome topic deleted, then back", 200, ["--latency-ms", "30"], outcome_topic_missing, deletes_outcomes=True
    ),
]  # fmt: skip


# --- running and checking ----------------------------------------------------------------------


def chaos_agents(target: Path) -> Path:
    """The shipped agents with short timeouts and retry tiers, so injected hangs cost seconds, not minutes,
    and with many events in flight."""
    return write_agents(
        target,
        model={"timeout_s": 2, "max_retries": 2},
        reliability={"deadline_s": 30, "backoff_base_s": 0.2, "retry_delays_s": [1, 3]},
        concurrency={"max_in_flight": 32},  # many events in flight when a fault lands
    )


def tool_agents(target: Path, connectors: Path, crm_url: str) -> Path:
    """The chaos agents, with support_triage told (by a simulator directive in its prompt) to open a
    follow-up ticket in the CRM for each event, through the shipped connector pointed at ``crm_url``."""
    triage = yaml.safe_load((REPO_ROOT / "deploy" / "agents" / "support_triage.yaml").read_text())
    ticket = '{"customer_id": "{{ payload.customer.id }}", "title": "follow-up {{ payload.ticket_id }}"}'
    prompt = triage["prompt"] | {"user": triage["prompt"]["user"] + f"\n[[sim:tool create_ticket {ticket}]]\n"}
    blocks = {"support_triage": {"tools": {"allow": ["crm.create_ticket"]}, "prompt": prompt}}
    connector = yaml.safe_load((REPO_ROOT / "deploy" / "connectors" / "crm.yaml").read_text())
    connectors.mkdir(parents=True, exist_ok=True)
    (connectors / "crm.yaml").write_text(yaml.safe_dump(connector | {"base_url": crm_url}))
    return write_agents(
        target,
        model={"timeout_s": 2, "max_retries": 2},
        reliability={"deadline_s": 30, "backoff_base_s": 0.2, "retry_delays_s": [1, 3]},
        concurrency={"max_in_flight": 32},
        blocks=blocks,
    )


def plan(run: Run) -> list:
    return topic_plan(load_agents(run.settings.agents_dir, run.catalogue), run.settings)


@contextlib.asynccontextmanager
async def watching(run: Run) -> AsyncIterator[Tally]:
    tally = Tally()
    watcher = OutcomeWatcher(client_config(run.settings), run.catalogue, outcome_topics(run.settings, AGENTS))
    await watcher.start(from_beginning=True)
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            try:
                for observed in await watcher.poll(timeout_s=0.3):
                    tally.add(observed)
            except Exception:
                await asyncio.sleep(0.5)
            run.ended = sum(1 for per_id in tally.by_kind["audit"].values() if per_id)

    task = asyncio.create_task(poll())
    try:
        yield tally
    finally:
        stop.set()
        await task
        await watcher.stop()


async def run_scenario(scenario: Scenario, broker: kafka_local.LocalKafka, agents_dir: Path) -> dict[str, object]:
    if not scenario.tools:
        return await _run_scenario(scenario, broker, agents_dir, {})
    crm = await start_crm(CrmState(Customers.from_samples(), token=CRM_TOKEN))
    try:
        state_dir = Path(tempfile.mkdtemp(prefix="keel-chaos-tools-"))
        agents_dir = tool_agents(state_dir / "agents", state_dir / "connectors", crm.url)
        env = {"KEEL_CONNECTORS_DIR": str(state_dir / "connectors"), "CRM_API_TOKEN": CRM_TOKEN}
        row = await _run_scenario(scenario, broker, agents_dir, env)
    finally:
        await crm.stop()
    titles = [ticket["title"] for ticket in crm.state.tickets]
    results = int(str(row["events"])) // len(AGENTS)  # the support tickets: each opens one ticket
    return row | {"tickets": len(titles), "repeated_writes": len(titles) - len(set(titles)),
                  "missing_writes": max(0, results - len(set(titles))), "replayed_by_key": crm.state.replays}  # fmt: skip


async def _run_scenario(
    scenario: Scenario, broker: kafka_local.LocalKafka, agents_dir: Path, extra_env: dict[str, str]
) -> dict[str, object]:
    namespace = f"chaos-{uuid.uuid4().hex[:6]}"
    state_dir = Path(tempfile.mkdtemp(prefix="keel-chaos-"))
    settings = Settings(
        bootstrap_servers=broker.bootstrap, namespace=namespace, agents_dir=agents_dir, state_dir=state_dir,
        provider_override="sim", web_port=0,
    )  # fmt: skip
    catalogue = load_catalogue(settings.schemas_dir)
    env = {
        "KEEL_AGENTS_DIR": str(agents_dir),
        "KEEL_PROVIDER_OVERRIDE": "sim",
        "KEEL_WEB_PORT": "0",
        # a killed worker's partitions move on after 6 s, not 30: the broker's minimum
        "KEEL_SESSION_TIMEOUT_S": "6",
        "KEEL_HEARTBEAT_INTERVAL_S": "1",
        **scenario.env,
        **extra_env,
    }
    run = Run(scenario, settings, catalogue, broker, env)
    started = time.monotonic()
    await ensure_topics(client_config(settings), plan(run))
    with run.stack:
        sim_url = run.stack.enter_context(simulator_process(state_dir, *scenario.sim))
        env["KEEL_PROVIDERS__SIM__BASE_URL"] = sim_url
        ids = await seed(run)
        async with watching(run) as tally:
            for _ in range(scenario.workers):
                run.start_worker()
            if scenario.disrupt is not None:
                await scenario.disrupt(run)
            deadline = time.monotonic() + 240

            def settled(event_id: str) -> bool:
                audited = bool(tally.by_kind["audit"].get(event_id))
                return tally.ended(event_id) or (scenario.deletes_outcomes and audited)

            while time.monotonic() < deadline and not all(settled(i) for i in ids):
                if all(worker.poll() is not None for worker in run.workers):
                    print(f"chaos:   every worker has exited; see {state_dir}/logs", file=sys.stderr)
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)  # late duplicates, usage records
    return check(scenario, ids, tally, time.monotonic() - started)


async def seed(run: Run) -> list[str]:
    """Publish the scenario's events, split over both agents, with poison pills mixed in if asked."""
    ids: list[str] = []
    per_agent = run.scenario.events // len(AGENTS)
    for agent, topic in (("support_triage", "support.tickets"), ("invoice_extraction", "finance.invoices")):
        events = take(load_samples(SAMPLES / f"{agent}.jsonl"), per_agent)
        step = run.scenario.poison_every or len(events)
        for start in range(0, len(events), step):
            ids += await publish(client_config(run.settings), run.settings.topic(topic), run.catalogue,
                                 events[start : start + step])  # fmt: skip
            if run.scenario.poison_every:
                garbage = [(b"poison", b"\x00\x00\x00\x00\x01" + uuid.uuid4().bytes)]
                positions = await publish_raw(client_config(run.settings), run.settings.topic(topic), garbage)
                ids += [f"undecodable:{t}/{p}/{o}" for t, p, o in positions]
    run.scenario.events = len(ids)
    return ids


def check(scenario: Scenario, ids: list[str], tally: Tally, seconds: float) -> dict[str, object]:
    lost = duplicate_outcomes = physical_duplicates = unaudited = double_paid = deleted_by_operator = tiered = 0
    for event_id in ids:
        outcomes = tally.outcomes(event_id)
        if not outcomes:
            # Decided and audited, but its outcome record sat in a topic the scenario deleted: gone with the
            # topic, not lost by Keel. Reported apart, and only where the scenario deletes a topic.
            audits = tally.by_kind["audit"].get(event_id, ())
            if scenario.deletes_outcomes and audits:
                deleted_by_operator += 1
            else:
                lost += 1
            continue
        distinct = {(o.kind, orjson.dumps(o.value, default=str)) for o in outcomes}
        duplicate_outcomes += len(distinct) > 1
        physical_duplicates += len(outcomes) - 1
        unaudited += not tally.by_kind["audit"].get(event_id)
        first_recorded = min(o.timestamp_ms for o in outcomes)
        usage = tally.by_kind["usage"].get(event_id, ())
        double_paid += sum(1 for u in usage if _ms(u.value["at"]) > first_recorded)
        tiered += any(u.value["purpose"] == "tier_retry" for u in usage)
    return {
        "name": scenario.name, "events": len(ids), "lost": lost, "duplicate_outcomes": duplicate_outcomes,
        "physical_duplicates": physical_duplicates, "unaudited": unaudited, "double_paid": double_paid,
        "deleted_with_topic": deleted_by_operator, "via_retry_tier": tiered, "seconds": round(seconds, 1),
    }  # fmt: skip


def _ms(value: object) -> int:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else int(str(value))


def print_table(rows: list[dict[str, object]]) -> None:
    columns = ["name", "events", "lost", "duplicate_outcomes", "physical_duplicates", "unaudited", "double_paid",
               "deleted_with_topic", "via_retry_tier", "seconds"]  # fmt: skip
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


async def main() -> int:
    broker = kafka_local.LocalKafka(port=CHAOS_PORT, state_dir=REPO_ROOT / ".keel" / f"chaos-kafka-{CHAOS_PORT}")
    kafka_local.stop(broker, force=True)
    kafka_local.wipe(broker)
    await asyncio.to_thread(kafka_local.start, broker)
    agents_dir = chaos_agents(Path(tempfile.mkdtemp(prefix="keel-chaos-agents-")))
    only = set(sys.argv[1:])
    rows = []
    try:
        for scenario in SCENARIOS:
            if only and not any(word in scenario.name for word in only):
                continue
            print(f"chaos: {scenario.name} ...", file=sys.stderr, flush=True)
            rows.append(await run_scenario(scenario, broker, agents_dir))
            print(f"chaos:   {rows[-1]}", file=sys.stderr, flush=True)
    finally:
        kafka_local.stop(broker)
    print_table(rows)
    keys = ("lost", "duplicate_outcomes", "double_paid", "repeated_writes", "missing_writes")
    totals = {key: sum(int(str(r.get(key, 0))) for r in rows) for key in keys}
    unaudited = sum(int(str(r["unaudited"])) for r in rows)
    print(orjson.dumps({"scenarios": rows, **totals}).decode())
    return 0 if not any(totals.values()) and not unaudited else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
