"""End to end through the embedded default model (llama.cpp serving SmolLM2), so `make run` cannot rot.

The tiny model is often wrong; whatever it answers, every event must end in exactly one outcome. The
server answers one request at a time: the worker queues its calls (the local provider's max_concurrent
of 1) instead of letting them spend their timeouts queued in the server (issue 14).

The server listens on 127.0.0.1:28080; ``KEEL_TEST_MODEL_PORT`` moves it, so that two checkouts can
run this test at once (as ``KEEL_TEST_BROKER_PORT`` moves the broker).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Stack, assert_exactly_one_outcome_and_audit, run_through, worker_stack

from connectors.local import llama_local
from streams.cli.publish import load_samples, take
from streams.core.settings import REPO_ROOT

TEST_MODEL_PORT = int(os.environ.get("KEEL_TEST_MODEL_PORT", "28080"))  # below the ephemeral range, as the broker's


@pytest.fixture(scope="module")
def local_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    server = llama_local.LocalModel(port=TEST_MODEL_PORT, state_dir=REPO_ROOT / ".keel" / "test-model")
    llama_local.start(server)
    try:
        with worker_stack(
            kafka_bootstrap,
            tmp_path_factory.mktemp("keel-local"),
            provider="local",
            base_url=server.base_url,
            wait_s=900,  # calls run one at a time on a small shared machine: a generous bound, not a target
        ) as stack:
            yield stack
    finally:
        llama_local.stop(server)


async def test_events_through_smollm2_each_end_in_one_outcome(local_stack: Stack, samples_dir: Path) -> None:
    tickets = take(load_samples(samples_dir / "support_triage.jsonl"), 4)
    invoices = take(load_samples(samples_dir / "invoice_extraction.jsonl"), 3)
    ids, tally = await run_through(local_stack, events={"support.tickets": tickets, "finance.invoices": invoices})
    assert_exactly_one_outcome_and_audit(ids, tally)
    summary = tally.summary(ids)
    assert summary["missing"] == 0 and summary["audit"] == 7
    # every attempt (first calls, re-asks after the tiny model's invalid answers) has its usage record
    audited_attempts = sum(a.value["attempts"] for per_id in tally.by_kind["audit"].values() for a in per_id)
    assert summary["usage"] == audited_attempts >= 7
    usage = [u.value for per_id in tally.by_kind["usage"].values() for u in per_id]
    assert {u["provider"] for u in usage} == {"local"}
    assert all(u["model_version"] == llama_local.MODEL_ALIAS for u in usage if u["outcome"] == "ok")
    assert all(u["tokens_in"] > 50 for u in usage)  # the server really read the prompt (or Keel estimated it)
    assert all(u["tokens_estimated"] for u in usage if u["outcome"] == "provider_timeout")  # never free
    # four events in flight (two agents, max_in_flight 2 each) share the model's one slot: some waited for it
    assert any(u["queued_ms"] > 0 for u in usage)
