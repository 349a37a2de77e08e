"""The worker's Prometheus metrics and the cost on usage records, on the real broker and a real scrape."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import free_port, run_through, scrape_metrics, worker_stack

from streams.cli.local_stack import simulator_process
from streams.core.settings import REPO_ROOT
from streams.cost.pricing import load_pricing

MODEL = "smollm2-135m-instruct"


async def test_metrics_count_outcomes_attempts_tokens_and_the_cost_usage_records_carry(
    kafka_bootstrap: str, tmp_path: Path, make_event
) -> None:
    port = free_port()
    good = [make_event(payload={"ticket_id": f"T-{i}", "body": "Charged twice"}) for i in range(12)]
    broken = [make_event(payload={"ticket_id": "T-x", "body": "bad [[sim:schema_violation]]"})]
    with (
        simulator_process(tmp_path, "--seed", "5") as sim_url,
        worker_stack(kafka_bootstrap, tmp_path, provider="sim", base_url=sim_url, web_port=port) as stack,
    ):
        ids, tally = await run_through(stack, events={"support.tickets": good + broken}, raw=[(b"k", b"junk")])
        got = await scrape_metrics(port)

    def value(name: str, **labels: str) -> float:
        return got.get((name, frozenset(labels.items())), 0.0)

    agent = "support_triage"
    assert value("keel_events_total", agent=agent, outcome="result") == 12
    assert value("keel_events_total", agent=agent, outcome="dead_letter") == 2
    assert value("keel_dead_letters_total", agent=agent, reason="wrong_magic_byte") == 1
    assert value("keel_dead_letters_total", agent=agent, reason="output_schema_violation") == 1
    usage = [record.value for i in ids for record in tally.by_kind["usage"].get(i, ())]
    failed = [u for u in usage if u["outcome"] != "ok"]
    assert failed and all(u["purpose"] in {"initial", "reask"} for u in failed)
    counted = {
        (u["purpose"], u["outcome"]): value(
            "keel_model_attempts_total",
            agent=agent,
            provider="sim",
            model=MODEL,
            purpose=u["purpose"],
            result=u["outcome"],
        )
        for u in usage
    }
    assert sum(counted.values()) == len(usage)
    tokens_in = value("keel_model_tokens_total", agent=agent, provider="sim", model=MODEL, direction="in")
    assert tokens_in == sum(u["tokens_in"] for u in usage) > 0
    # every usage record is priced by the shipped table, and the metric adds up the same costs
    version = load_pricing(REPO_ROOT / "deploy" / "pricing.yaml").table.version
    assert {u["price_version"] for u in usage} == {version}
    cost = value("keel_model_cost_usd_total", agent=agent, provider="sim", model=MODEL)
    assert cost == pytest.approx(sum(u["cost_usd"] for u in usage)) and cost > 0
    assert value("keel_in_flight", agent=agent) == 0
    assert value("keel_circuit_state", provider="sim", model=MODEL) == 0
    lagging = [key for key in got if key[0] == "keel_consumer_lag"]
    assert {dict(labels)["topic"] for _, labels in lagging} >= {stack.topic("support.tickets")}
