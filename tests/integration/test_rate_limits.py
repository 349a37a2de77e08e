"""Rate limits on the real broker with the provider simulator: hitting a limit delays events, it does
not fail them, and Keel stays under the limit it declares (one worker or a group of two) and under
what the provider says."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from harness import (
    Stack,
    assert_exactly_one_outcome_and_audit,
    free_port,
    run_through,
    scrape_metrics,
    worker_stack,
)

from streams.cli.local_stack import simulator_process, worker_process
from streams.cli.watch import Tally
from streams.core.domain import RequestEvent

MODEL = "smollm2-135m-instruct"  # the shipped agents' model, served by the simulator
KEEL_RPM, SIM_RPM = 120, 150  # Keel's declared limit sits just under the simulator's own
# The simulator's bucket holds 2 s of its 150 a minute (5 calls): it refuses bursts a minute's bucket would take.
LIMITED_SIM = ("--latency-ms", "50", "--requests-per-minute", str(SIM_RPM), "--rate-limit-period-s", "2")
# Keel's 120 a minute is 2 calls a second, 2 at most at once (1 s of burst): at most 5 * 2 + 2 calls
# in any 5 s, where 16 events in flight without a limit would send 16 at once.
MOST_IN_5_S = 12


def tickets(make_event: Callable[..., RequestEvent], n: int, prefix: str) -> list[RequestEvent]:
    return [make_event(payload={"ticket_id": f"{prefix}-{i}", "body": "I was charged twice."}) for i in range(n)]


def declare(tmp_path: Path, requests_per_minute: float) -> dict[str, str]:
    """A rate-limit table holding the simulator's model to ``requests_per_minute``, as worker settings."""
    limits = tmp_path / "rate_limits.yaml"
    entry = {"provider": "sim", "model": MODEL, "requests_per_minute": requests_per_minute}
    limits.write_text(yaml.safe_dump({"limits": [entry]}))
    return {"KEEL_RATE_LIMITS_FILE": str(limits), "KEEL_RATE_LIMIT_BURST_S": "1"}


@contextlib.contextmanager
def sim_and_worker(
    kafka_bootstrap: str, tmp_path: Path, sim_args: Sequence[str], *, web_port: int, env: dict[str, str] | None = None
) -> Iterator[tuple[str, Stack]]:
    """The provider simulator started with ``sim_args``, and a worker calling it with 16 events in flight
    and its metrics on ``web_port``: the simulator's URL and the worker's stack."""
    with (
        simulator_process(tmp_path, *sim_args) as sim_url,
        worker_stack(
            kafka_bootstrap,
            tmp_path,
            provider="sim",
            base_url=sim_url,
            web_port=web_port,
            concurrency={"max_in_flight": 16},
            env=env,
        ) as stack,
    ):
        yield sim_url, stack


def sim_get(sim_url: str, path: str) -> Any:
    return httpx.get(sim_url.removesuffix("/v1") + path).json()


def total(samples: dict[Any, float], metric: str, /, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == metric and set(labels.items()) <= ls)


def busiest(times: Sequence[float], window_s: float) -> int:
    """The most calls that arrived at the simulator within any ``window_s`` seconds."""
    return max(sum(1 for t in times if start <= t < start + window_s) for start in times)


def assert_all_results(ids: list[str], tally: Tally) -> None:
    assert_exactly_one_outcome_and_audit(ids, tally)
    summary = tally.summary(ids)
    dead = [(o.value["reason"], o.value["message"]) for i in ids for o in tally.outcomes(i) if o.kind == "dead_letter"]
    assert (summary["results"], summary["dead_letters"], summary["missing"]) == (len(ids), 0, 0), (summary, dead[:3])


async def test_a_burst_is_held_to_the_declared_limit_and_every_event_still_succeeds(
    kafka_bootstrap: str, tmp_path: Path, make_event
) -> None:
    port = free_port()
    with sim_and_worker(
        kafka_bootstrap, tmp_path, ("--seed", "3", *LIMITED_SIM), web_port=port, env=declare(tmp_path, KEEL_RPM)
    ) as (sim_url, stack):
        ids, tally = await run_through(stack, events={"support.tickets": tickets(make_event, 40, "RL")})
        metrics = await scrape_metrics(port)
        stats, times = sim_get(sim_url, "/sim/stats"), sim_get(sim_url, "/sim/requests")["times_s"]
    assert_all_results(ids, tally)
    assert stats["rate_limited"] == 0  # the simulator never had to refuse a call
    assert len(times) == 40
    assert busiest(times, 5) <= MOST_IN_5_S, busiest(times, 5)
    assert times[-1] - times[0] >= 18.5  # 40 calls at 2 a second, 2 of them at once
    waited = total(metrics, "keel_rate_limit_wait_seconds_count", provider="sim", model=MODEL, limit="model_requests")
    assert waited >= 30
    assert total(metrics, "keel_rate_limited_total", action="refused") == 0
    assert total(metrics, "keel_rate_limit_share", scope="model", name=f"sim/{MODEL}") == 1


async def shares(ports: Sequence[int]) -> list[float]:
    name = f"sim/{MODEL}"
    return [total(await scrape_metrics(port), "keel_rate_limit_share", scope="model", name=name) for port in ports]


async def test_two_workers_of_a_group_share_the_limit_and_stay_under_it_together(
    kafka_bootstrap: str, tmp_path: Path, make_event
) -> None:
    ports = [free_port(), free_port()]
    with (
        sim_and_worker(
            kafka_bootstrap, tmp_path, ("--seed", "5", *LIMITED_SIM), web_port=ports[0], env=declare(tmp_path, KEEL_RPM)
        ) as (sim_url, stack),
        worker_process(stack.settings, {**stack.worker_env, "KEEL_WEB_PORT": str(ports[1])}) as second,
    ):
        for _ in range(120):  # until the group has settled with both workers in it
            parts = await shares(ports)
            if all(0 < part < 1 for part in parts) and sum(parts) == 1:
                break
            await asyncio.sleep(0.5)
        assert all(0 < part < 1 for part in parts) and sum(parts) == 1, parts
        ids, tally = await run_through(stack, events={"support.tickets": tickets(make_event, 40, "TW")})
        assert second.poll() is None
        stats, times = sim_get(sim_url, "/sim/stats"), sim_get(sim_url, "/sim/requests")["times_s"]
        served = [total(await scrape_metrics(port), "keel_model_attempts_total", result="ok") for port in ports]
    assert_all_results(ids, tally)
    assert all(served), served  # both workers made calls
    assert stats["rate_limited"] == 0
    # each worker holds to its share, so together they stay under the limit (each alone: twice that)
    assert busiest(times, 5) <= MOST_IN_5_S, busiest(times, 5)


async def test_a_provider_answering_429_for_a_while_delays_events_and_fails_none(
    kafka_bootstrap: str, tmp_path: Path, make_event
) -> None:
    port = free_port()
    # The provider's quota is gone for 5 s: each 429 says Retry-After 1 s, and that nothing remains
    # until the reset (x-ratelimit-remaining-requests: 0). Retrying after 1 s alone would spend an event's
    # 3 attempts in 2 s and dead-letter it; holding every call until the reset gets them all through.
    sim_args = ("--seed", "4", "--latency-ms", "20", "--retry-after-s", "1")
    with sim_and_worker(kafka_bootstrap, tmp_path, sim_args, web_port=port) as (sim_url, stack):
        warm, warm_tally = await run_through(stack, events={"support.tickets": tickets(make_event, 1, "WARM")})
        assert_all_results(warm, warm_tally)  # the worker is consuming before the quota runs out

        async def throttle() -> None:
            async with httpx.AsyncClient() as client:
                response = await client.post(sim_url.removesuffix("/v1") + "/sim/throttle", json={"seconds": 5})
                response.raise_for_status()

        ids, tally = await run_through(
            stack, events={"support.tickets": tickets(make_event, 12, "TH")}, action=throttle
        )
        metrics = await scrape_metrics(port)
        stats = sim_get(sim_url, "/sim/stats")
    assert_all_results(ids, tally)
    refused_by_provider = 0
    for event_id in ids:
        usage = sorted((u.value for u in tally.by_kind["usage"][event_id]), key=lambda u: u["attempt"])
        outcomes = [u["outcome"] for u in usage]
        assert outcomes[-1] == "ok" and outcomes.count("provider_rate_limited") <= 1, outcomes
        refused_by_provider += outcomes.count("provider_rate_limited")
        [audit] = tally.by_kind["audit"][event_id]
        assert audit.value["total_ms"] >= 3000  # delayed until the quota came back
    assert refused_by_provider >= 1 and stats["rate_limited"] == refused_by_provider
    assert total(metrics, "keel_rate_limit_holds_total", provider="sim", model=MODEL, cause="exhausted") >= 1
    assert total(metrics, "keel_rate_limit_wait_seconds_count", limit="provider_hold") >= 1
