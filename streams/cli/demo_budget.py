"""`keel demo --scenario budget`: drive an agent past its hard budget on the simulator, then raise it.

The support_triage agent gets a daily budget that about half of the events fit in (a budget file in
the state dir, ``KEEL_BUDGETS_FILE``). The demo publishes the events, waits until each has a result or
is parked and the budget's ledger has settled, raises the budget with the same request `keel budget
raise` sends, and waits until every parked event has resumed into a result. Its last line is JSON;
the exit status is 0 only when no event is missing and the spend passed the limit by at most one
call's maximum cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import yaml

from streams.apps.wiring import load_runtime
from streams.apps.worker.budget_client import first_call_maximum
from streams.cli.budget_report import raise_budget, settled_spend
from streams.cli.demo import DemoOptions, local_services, publish_samples
from streams.cli.local_stack import say, worker_process
from streams.cli.publish import load_samples, take
from streams.cli.watch import OutcomeWatcher, Tally, outcome_topics
from streams.contracts.topics import topic_plan
from streams.core.catalogue import Catalogue
from streams.core.settings import REPO_ROOT, Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.alert_log import read_alerts
from streams.kafka.connection import client_config

AGENT = "support_triage"
SCOPE = f"agent:{AGENT}"
TYPICAL_CALL_USD = 0.00005  # a simulated support_triage call at the shipped simulator prices


def run_budget_demo(settings: Settings, options: DemoOptions) -> int:
    namespace = settings.namespace or f"budget-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    limit_usd = round(options.events / 2 * TYPICAL_CALL_USD, 6)
    budgets_file = settings.state_dir / f"budgets-{namespace}.yaml"
    budgets_file.parent.mkdir(parents=True, exist_ok=True)
    budgets_file.write_text(yaml.safe_dump({"agents": {AGENT: {"daily_usd": limit_usd}}}))
    with local_services(settings, "sim") as services_env:
        settings = settings.model_copy(
            update={"provider_override": "sim", "namespace": namespace, "budgets_file": budgets_file, "agents": [AGENT]}
        )
        env = {**services_env, "KEEL_BUDGETS_FILE": str(budgets_file), "KEEL_AGENTS": f'["{AGENT}"]'}
        env["KEEL_BUDGET_RESUME_POLL_S"] = "1"
        say(f"namespace {namespace}: {AGENT} may spend {limit_usd} USD today; {options.events} events")
        with worker_process(settings, env), worker_process(settings, env, command="aggregate"):
            summary = asyncio.run(_drive(settings, options, limit_usd))
    print(orjson.dumps(summary).decode())
    within = summary["overspend_usd"] <= _one_call_maximum_usd(settings)
    return 0 if summary["missing"] == 0 and within else 1


async def _drive(settings: Settings, options: DemoOptions, limit_usd: float) -> dict[str, float | int]:
    runtime = load_runtime(settings, tools=False)
    await ensure_topics(client_config(settings), topic_plan(runtime.agents, settings))
    watcher = OutcomeWatcher(client_config(settings), runtime.catalogue, outcome_topics(settings, [AGENT]))
    await watcher.start()
    try:
        ids = await publish_samples(settings, AGENT, options.events)
        tally, deadline = Tally(), time.monotonic() + options.timeout_s
        await _watch(watcher, tally, ids, deadline, until=lambda i: bool(tally.outcome_kinds(i) or tally.parked(i)))
        spent = (await settled_spend(settings, SCOPE)).usd
        parked = sum(1 for i in ids if tally.by_kind["parked"].get(i))
        say(f"budget reached: {spent:.6f} USD spent of {limit_usd}; {parked} events parked; raising the budget")
        await raise_budget(settings, SCOPE, kind="day", usd=limit_usd * 1000, tokens=None)
        await _watch(watcher, tally, ids, deadline, until=tally.ended)
    finally:
        await watcher.stop()
        await runtime.aclose()
    parked_ids = [i for i in ids if tally.by_kind["parked"].get(i)]
    summary = tally.summary(ids)
    return {
        "events": len(ids),
        "results": summary["results"],
        "parked": len(parked_ids),
        "resumed": sum(1 for i in parked_ids if tally.outcome_kinds(i)),
        "alerts": await _budget_alerts(settings, runtime.catalogue),
        "missing": summary["missing"],
        "overspend_usd": round(max(0.0, spent - limit_usd), 9),
    }


async def _watch(
    watcher: OutcomeWatcher, tally: Tally, ids: list[str], deadline: float, *, until: Callable[[str], bool]
) -> None:
    wanted = set(ids)
    while time.monotonic() < deadline and not all(until(i) for i in ids):
        for observed in await watcher.poll(timeout_s=0.5):
            if observed.event_id in wanted:
                tally.add(observed)


async def _budget_alerts(settings: Settings, catalogue: Catalogue) -> int:
    """Budget alert records on ``keel.alerts`` (firing and resolved) for the demo's budget."""
    return sum(1 for alert in await read_alerts(settings, catalogue) if alert.rule == "budget")


def _one_call_maximum_usd(settings: Settings) -> float:
    runtime = load_runtime(settings, tools=False)
    [agent] = runtime.agents
    samples = load_samples(REPO_ROOT / "deploy" / "samples" / f"{AGENT}.jsonl")
    return max(first_call_maximum(agent, event, runtime.pricing).usd for event in take(samples, len(samples)))
