"""Budgets on the real broker: the hard limit parks events, a raise resumes them, and concurrent calls
in two workers cannot spend past the limit by more than one call's maximum."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from harness import AGENTS, Stack, assert_exactly_one_outcome_and_audit, worker_stack

from streams.apps.wiring import load_runtime
from streams.apps.worker.budget_client import first_call_maximum
from streams.cli.budget_report import raise_budget, settled_spend
from streams.cli.local_stack import simulator_process, worker_process
from streams.cli.publish import load_samples, publish, take
from streams.cli.watch import OutcomeWatcher, Tally, outcome_topics
from streams.core import wire
from streams.core.domain import RequestEvent
from streams.kafka.connection import client_config
from streams.kafka.consumers import read_to_end

SCOPE = "agent:support_triage"


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with simulator_process(tmp_path_factory.mktemp("sim"), "--seed", "5", "--latency-ms", "300") as url:
        yield url


@contextlib.contextmanager
def _budget_stack(kafka_bootstrap: str, state_dir: Path, sim_url: str, *, daily_usd: float) -> Iterator[Stack]:
    with worker_stack(
        kafka_bootstrap,
        state_dir,
        provider="sim",
        base_url=sim_url,
        budget={"daily_usd": daily_usd},
        concurrency={"max_in_flight": 256},
        env={"KEEL_BUDGET_RESUME_POLL_S": "0.5", "KEEL_MAX_IN_FLIGHT": "256"},
        wait_s=120,
    ) as stack:
        yield stack


async def _publish_and_watch(
    stack: Stack, events: list[RequestEvent], until: Callable[[Tally, list[str]], bool]
) -> Tally:
    """Publish ``events`` (none: watch only) and read outcomes until ``until`` holds or the wait runs out."""
    watcher = OutcomeWatcher(client_config(stack.settings), stack.catalogue, outcome_topics(stack.settings, AGENTS))
    await watcher.start(from_beginning=True)
    try:
        ids = [e.event_id for e in events]
        await publish(client_config(stack.settings), stack.topic("support.tickets"), stack.catalogue, events)
        tally = Tally()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stack.wait_s
        while loop.time() < deadline and not until(tally, ids):
            stack.check_worker()
            for observed in await watcher.poll(timeout_s=0.5):
                tally.add(observed)
        for observed in await watcher.poll(timeout_s=1.0):  # usage records after the last outcome
            tally.add(observed)
        return tally
    finally:
        await watcher.stop()


def _all_placed(tally: Tally, ids: list[str]) -> bool:
    """Every event parked, or ended with its usage records read too."""
    return all((tally.outcome_kinds(i) and tally.by_kind["usage"].get(i)) or tally.parked(i) for i in ids)


def _spent_usd(tally: Tally, ids: list[str]) -> float:
    return sum(u.value["cost_usd"] or 0.0 for i in ids for u in tally.by_kind["usage"].get(i, ()))


async def _settled_spend_usd(stack: Stack) -> float:
    return (await settled_spend(stack.settings, SCOPE, wait_s=150)).usd  # beyond a hold's expiry (90 s)


async def _usage_spend_usd(stack: Stack) -> float:
    """The cost of every usage record written so far."""
    tps = [TopicPartition(stack.topic("keel.usage"), p) for p in range(stack.settings.partitions)]
    records = [m async for m in read_to_end(client_config(stack.settings), tps)]
    return sum(wire.decode(stack.catalogue, m.value)["cost_usd"] or 0.0 for m in records)


def _one_call_maximum_usd(stack: Stack, events: list[RequestEvent]) -> float:
    runtime = load_runtime(stack.settings)
    [agent] = [a for a in runtime.agents if a.name == "support_triage"]
    return max(first_call_maximum(agent, event, runtime.pricing).usd for event in events)


async def test_the_hard_limit_parks_events_and_a_raise_resumes_them(
    kafka_bootstrap: str, sim_url: str, tmp_path: Path, samples_dir: Path
) -> None:
    limit_usd = 0.002
    events = take(load_samples(samples_dir / "support_triage.jsonl"), 30)
    with _budget_stack(kafka_bootstrap, tmp_path, sim_url, daily_usd=limit_usd) as stack:
        tally = await _publish_and_watch(stack, events, _all_placed)
        ids = [e.event_id for e in events]
        summary = tally.summary(ids)
        assert summary["missing"] == 0, summary
        assert summary["results"] >= 1 and summary["parked"] >= 1, summary
        spent = await _settled_spend_usd(stack)
        assert spent == pytest.approx(await _usage_spend_usd(stack)), "the ledger reconciles with the usage records"
        assert spent <= limit_usd + _one_call_maximum_usd(stack, events), (spent, limit_usd)

        decision = await raise_budget(stack.settings, SCOPE, kind="day", usd=1.0, tokens=None)
        assert decision.granted
        tally = await _publish_and_watch(stack, [], lambda t, _: all(t.ended(i) for i in ids))
        assert_exactly_one_outcome_and_audit(ids, tally)
        assert tally.summary(ids)["results"] == 30
        assert sum(1 for i in ids if tally.by_kind["parked"].get(i)) >= summary["parked"]  # each parked one resumed
        assert await _settled_spend_usd(stack) == pytest.approx(await _usage_spend_usd(stack))


async def test_two_workers_with_256_in_flight_each_overspend_by_at_most_one_call(
    kafka_bootstrap: str, sim_url: str, tmp_path: Path, samples_dir: Path
) -> None:
    limit_usd = 0.02
    events = take(load_samples(samples_dir / "support_triage.jsonl"), 600)
    with _budget_stack(kafka_bootstrap, tmp_path, sim_url, daily_usd=limit_usd) as stack:
        with worker_process(stack.settings, stack.worker_env):  # the second worker of the group
            tally = await _publish_and_watch(stack, events, _all_placed)
            ids = [e.event_id for e in events]
            summary = tally.summary(ids)
            assert summary["missing"] == 0, summary
            assert summary["parked"] > 0 and summary["results"] > 0, summary
            spent = await _settled_spend_usd(stack)
        # Calls cut short when the second worker's arrival moved partitions count in full in the ledger
        # (they may have been paid for) but have no usage record: the ledger is at least the usage.
        assert await _usage_spend_usd(stack) <= spent + 1e-9, "every recorded call is in the ledger"
        bound = limit_usd + _one_call_maximum_usd(stack, events)
        assert spent <= bound, f"spent {spent:.6f} USD against a limit of {limit_usd} (bound {bound:.6f})"
