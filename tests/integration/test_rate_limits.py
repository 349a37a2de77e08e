"""Rate limits on the real broker with the provider simulator: hitting a limit delays events, it does
not fail them, and Keel stays under the limit it declares and under what the provider says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import yaml
from harness import (
    assert_exactly_one_outcome_and_audit,
    free_port,
    run_through,
    scrape_metrics,
    worker_stack,
)

from streams.domain import RequestEvent
from streams.local_stack import simulator_process
from streams.watch import Tally

MODEL = "smollm2-135m-instruct"  # the shipped agents' model, served by the simulator
KEEL_RPM, SIM_RPM = 120, 150  # Keel's declared limit sits just under the simulator's own


def tickets(make_event: Callable[..., RequestEvent], n: int, prefix: str) -> list[RequestEvent]:
    return [make_event(payload={"ticket_id": f"{prefix}-{i}", "body": "I was charged twice."}) for i in range(n)]


def sim_get(sim_url: str, path: str) -> dict:
    return httpx.get(sim_url.removesuffix("/v1") + path).json()


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def assert_all_results(ids: list[str], tally: Tally) -> None:
    assert_exactly_one_outcome_and_audit(ids, tally)
    summary = tally.summary(ids)
    dead = [(o.value["reason"], o.value["message"]) for i in ids for o in tally.outcomes(i) if o.kind == "dead_letter"]
    assert (summary["results"], summary["dead_letters"], summary["missing"]) == (len(ids), 0, 0), (summary, dead[:3])


async def test_a_burst_is_held_to_the_declared_limit_and_every_event_still_succeeds(
    kafka_bootstrap: str, tmp_path: Path, make_event
) -> None:
    limits = tmp_path / "rate_limits.yaml"
    limits.write_text(
        yaml.safe_dump({"limits": [{"provider": "sim", "model": MODEL, "requests_per_minute": KEEL_RPM}]})
    )
    events, port = tickets(make_event, 40, "RL"), free_port()
    sim_options = (
        "--seed",
        "3",
        "--latency-ms",
        "50",
        "--requests-per-minute",
        str(SIM_RPM),
        "--rate-limit-period-s",
        "2",
    )
    with (
        simulator_process(tmp_path, *sim_options) as sim_url,
        worker_stack(
            kafka_bootstrap,
            tmp_path,
            provider="sim",
            base_url=sim_url,
            web_port=port,
            concurrency={"max_in_flight": 16},
            env={"KEEL_RATE_LIMITS_FILE": str(limits), "KEEL_RATE_LIMIT_BURST_S": "1"},
        ) as stack,
    ):
        ids, tally = await run_through(stack, events={"support.tickets": events})
        metrics = await scrape_metrics(port)
        stats, times = sim_get(sim_url, "/sim/stats"), sim_get(sim_url, "/sim/requests")["times_s"]
    assert_all_results(ids, tally)
    assert stats["rate_limited"] == 0  # the simulator never had to refuse a call
    assert len(times) == 40
    # Keel's 120 a minute is 2 a second, at most 2 at once (1 s of burst): 40 calls take 19 s or more,
    # and no 5-second window holds more than 5 * 2 + 2 of them (16 in flight would send all 40 at once)
    busiest = max(sum(1 for t in times if start <= t < start + 5) for start in times)
    assert busiest <= 12, busiest
    assert times[-1] - times[0] >= 18.5
    waited = total(metrics, "keel_rate_limit_wait_seconds_count", provider="sim", model=MODEL, limit="model_requests")
    assert waited >= 30
    assert total(metrics, "keel_rate_limited_total", action="refused") == 0


async def test_a_provider_answering_429_for_a_while_delays_events_and_fails_none(
    kafka_bootstrap: str, tmp_path: Path, make_event
) -> None:
    port = free_port()
    # The provider's quota is gone for 5 s: each 429 says Retry-After 1 s, and that nothing remains
    # until the reset (x-ratelimit-remaining-requests: 0). Retrying after 1 s alone would spend an event's
    # 3 attempts in 2 s and dead-letter it; holding every call until the reset gets them all through.
    with (
        simulator_process(tmp_path, "--seed", "4", "--latency-ms", "20", "--retry-after-s", "1") as sim_url,
        worker_stack(
            kafka_bootstrap,
            tmp_path,
            provider="sim",
            base_url=sim_url,
            web_port=port,
            concurrency={"max_in_flight": 16},
        ) as stack,
    ):
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
