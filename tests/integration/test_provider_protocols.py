"""A chain across vendors without a proxy: its first model spoken to over the Anthropic Messages API,
its fallback over OpenAI's chat completions, on the real broker. One simulator serves both wires; a
``[[sim:outage=1]]`` ticket gets a 529 (overloaded) on its first request, which is the Anthropic one."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import assert_exactly_one_outcome_and_audit, only_outcome, run_through, worker_stack

from streams.cli.local_stack import simulator_process
from streams.core.settings import REPO_ROOT
from streams.cost.pricing import load_pricing

MODEL = "smollm2-135m-instruct"
CHAIN = [
    {"provider": "sim_anthropic", "model": MODEL, "parameters": {"max_tokens": 384}, "timeout_s": 30, "max_retries": 0},
    {"provider": "sim", "model": MODEL, "parameters": {"max_tokens": 384}, "timeout_s": 30, "max_retries": 0},
]


async def test_a_chain_falls_back_from_the_anthropic_protocol_to_the_openai_one(
    kafka_bootstrap: str, tmp_path: Path, make_event
) -> None:
    with simulator_process(tmp_path, "--seed", "6") as sim_url:
        env = {"KEEL_PROVIDERS__SIM__BASE_URL": sim_url, "KEEL_PROVIDERS__SIM_ANTHROPIC__BASE_URL": sim_url}
        with worker_stack(
            kafka_bootstrap, tmp_path, provider=None, env=env, blocks={"support_triage": {"model_chain": CHAIN}}
        ) as stack:
            events = [
                make_event(
                    business_key=f"CUST-{i}",
                    payload={
                        "ticket_id": f"T-{i}",
                        "body": f"Refund please {i}" + (" [[sim:outage=1]]" if i % 2 else ""),
                    },
                )
                for i in range(6)
            ]
            ids, tally = await run_through(stack, events={"support.tickets": events})
    assert_exactly_one_outcome_and_audit(ids, tally)
    pricing = load_pricing(REPO_ROOT / "deploy" / "pricing.yaml")
    for i, event in enumerate(events):
        assert only_outcome(tally, event.event_id).kind == "result"
        usage = [u.value for u in sorted(tally.by_kind["usage"][event.event_id], key=lambda u: u.value["attempt"])]
        [audit] = tally.by_kind["audit"][event.event_id]
        steps = [(a["provider"], a["purpose"], a["outcome"]) for a in audit.value["attempt_log"]]
        if i % 2:  # overloaded on the Anthropic wire, answered on the OpenAI one
            assert [(u["provider"], u["outcome"]) for u in usage] == [("sim_anthropic", "provider_5xx"), ("sim", "ok")]
            assert steps == [("sim_anthropic", "initial", "provider_5xx"), ("sim", "fallback", "ok")]
        else:
            assert [(u["provider"], u["outcome"]) for u in usage] == [("sim_anthropic", "ok")]
            assert steps == [("sim_anthropic", "initial", "ok")]
        for record in usage:  # each wire's usage block, priced at its provider's price
            expected = pricing.cost(
                record["provider"], MODEL, tokens_in=record["tokens_in"], tokens_out=record["tokens_out"]
            )
            assert record["cost_usd"] == pytest.approx(expected.usd)
            assert record["outcome"] != "ok" or (record["tokens_in"] > 0 and record["tokens_out"] > 0)
