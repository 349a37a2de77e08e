"""`keel eval` on the real broker with the provider simulator: a worker decides a dozen events, a candidate
is deployed and measured against the stable version on what the audit trail recorded and on a golden
file; the cost in its table is what its usage records (purpose ``eval``) hold; it writes nothing else;
and `keel agent promote --require-eval` refuses a version without a passing evaluation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import TopicPartition
from harness import Stack, run_through, worker_stack
from harness import keel_cli as keel

from streams.agent.definition import load_agents
from streams.cli.publish import load_samples, take
from streams.contracts.headers import H_CONFIG_VERSION, H_EVAL_RUN
from streams.contracts.topics import AUDIT, USAGE, agent_topics
from streams.core import wire
from streams.core.settings import REPO_ROOT
from streams.kafka.agent_configs import read_config_log
from streams.kafka.connection import client_config
from streams.kafka.consumers import read_to_end

pytestmark = pytest.mark.integration
AGENT = "support_triage"
EVENTS = 12


def deployed(stack: Stack, folder: Path, name: str, *, system: str, evaluation: dict[str, float]) -> str:
    """A version of the shipped agent with more system prompt and an evaluation block, deployed: its id."""
    document = yaml.safe_load((stack.settings.agents_dir / f"{AGENT}.yaml").read_text())
    document["prompt"]["system"] += f"\n{system}"
    document["evaluation"] = evaluation
    path = folder / f"{AGENT}-{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    done = keel(stack, "agent", "deploy", str(path), "-m", name)
    assert done.returncode == 0, done.stderr[-2000:]
    return re.search(r"deployed (\w+)", done.stdout).group(1)  # type: ignore[union-attr]


async def topic_values(stack: Stack, topic: str, subject: str) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    tps = [TopicPartition(stack.topic(topic), p) for p in range(stack.settings.partitions)]
    return [
        (wire.decode(stack.catalogue, m.value, subject=subject), dict(m.headers))
        async for m in read_to_end(client_config(stack.settings), tps)
    ]


async def counts(stack: Stack) -> dict[str, int]:
    """Records on every topic an eval must not write, by topic."""
    agent = next(a for a in load_agents(stack.settings.agents_dir, stack.catalogue) if a.name == AGENT)
    topics = agent_topics(agent, stack.settings)
    names = [topics.results, topics.review, topics.dlq, stack.topic(AUDIT)]
    found: dict[str, int] = {}
    for name in names:
        tps = [TopicPartition(name, p) for p in range(stack.settings.partitions)]
        found[name] = len([m async for m in read_to_end(client_config(stack.settings), tps)])
    return found


def table_costs(table: str) -> tuple[float, float]:
    line = next(line for line in table.splitlines() if line.startswith("cost USD "))
    baseline, candidate = re.findall(r"\d+\.\d+", line)
    return float(baseline), float(candidate)


def eval_costs(usage: list[tuple[dict[str, Any], dict[str, bytes]]], run_id: str) -> dict[str, float]:
    """The cost of a run's usage records, by config version."""
    summed: dict[str, float] = {}
    for value, headers in usage:
        if headers.get(H_EVAL_RUN) == run_id.encode():
            assert value["purpose"] == "eval"
            config = headers[H_CONFIG_VERSION].decode()
            summed[config] = summed.get(config, 0.0) + (value["cost_usd"] or 0.0)
    return summed


async def test_eval_since_and_golden_and_the_promote_gate(kafka_bootstrap: str, sim_url: str, tmp_path: Path) -> None:
    with worker_stack(kafka_bootstrap, tmp_path, provider="sim", base_url=sim_url) as stack:
        samples = load_samples(REPO_ROOT / "deploy" / "samples" / f"{AGENT}.jsonl")
        ids, tally = await run_through(stack, events={"support.tickets": take(samples, EVENTS)})
        assert all(tally.ended(i) for i in ids)
    audit = {o.event_id: o.value for i in ids for o in tally.by_kind["audit"][i]}

    # a candidate that meets its thresholds; the gate refuses it until it has been evaluated
    passing = deployed(stack, tmp_path, "v2", system="Answer briefly.",
                       evaluation={"min_schema_valid_rate": 0.9, "max_cost_per_event_usd": 0.01})  # fmt: skip
    log = await read_config_log(client_config(stack.settings), stack.catalogue, stack.settings)
    first = log.labels[AGENT].stable
    refused = keel(stack, "agent", "promote", AGENT, passing, "--require-eval")
    assert refused.returncode == 2 and "has not been evaluated" in refused.stderr, refused.stderr
    before = await counts(stack)

    since = keel(stack, "eval", AGENT, "--candidate", passing, "--since", "1h")
    print(f"\n$ keel eval {AGENT} --candidate {passing} --since 1h\n{since.stdout}")
    assert since.returncode == 0, since.stdout + since.stderr
    rows = {line[:30].strip(): line[30:].split() for line in since.stdout.splitlines()[2:]}
    assert rows["events"] == [str(EVENTS), str(EVENTS)]
    assert rows["agreement with recorded output"][0] == "100.0%"  # the baseline replays what the worker did
    assert f"baseline {first}" in since.stdout and f"candidate {passing}" in since.stdout
    assert since.stdout.rstrip().endswith("PASS")
    run_id = re.search(r"run (\w+)", since.stdout).group(1)  # type: ignore[union-attr]
    usage = await topic_values(stack, USAGE, "keel.usage-value")
    by_config = eval_costs(usage, run_id)
    assert {c.split("-")[0] for c in by_config} == {first, passing}
    costs = {c.split("-")[0]: v for c, v in by_config.items()}
    baseline_cost, candidate_cost = table_costs(since.stdout)
    assert costs[first] > 0 and abs(costs[first] - baseline_cost) < 1e-8 and abs(costs[passing] - candidate_cost) < 1e-8
    assert await counts(stack) == before  # no result, review item, dead letter or audit record

    accepted = keel(stack, "agent", "promote", AGENT, passing, "--require-eval")
    assert accepted.returncode == 0 and "passed its latest evaluation" in accepted.stdout, accepted.stderr

    # a golden file whose expected outputs are the first version's: a candidate that must agree fails
    golden = tmp_path / "golden.jsonl"
    chosen = [i for i in ids if audit[i]["output"] is not None][:4]
    lines = []
    for number, event_id in enumerate(chosen):
        payload = orjson.loads(audit[event_id]["input_payload"])
        sample = next(s for s in samples if s["payload"] == payload)
        lines.append(orjson.dumps({"event": {**sample, "event_id": f"g-{number}"},
                                   "expected": orjson.loads(audit[event_id]["output"])}))  # fmt: skip
    golden.write_bytes(b"\n".join(lines) + b"\n")
    strict = deployed(stack, tmp_path, "v3", system="Answer in English.", evaluation={"min_agreement": 0.99})
    failed = keel(stack, "eval", AGENT, "--candidate", strict, "--baseline", first, "--golden", str(golden),
                  "--format", "json")  # fmt: skip
    print(f"$ keel eval {AGENT} --candidate {strict} --baseline {first} --golden {golden.name} --format json\n"
          f"{failed.stdout}")  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    report = orjson.loads(failed.stdout)
    assert report["baseline"]["events"] == report["candidate"]["events"] == len(chosen)
    assert report["baseline"]["agreement"] == 1.0 and report["candidate"]["agreement"] < 0.99
    assert not report["passed"] and "agreement" in report["reasons"][0]
    golden_costs = {c.split("-")[0]: v for c, v in eval_costs(await topic_values(stack, USAGE, "keel.usage-value"),
                                                              report["run_id"]).items()}  # fmt: skip
    assert abs(golden_costs[strict] - report["candidate"]["cost_usd"]) < 1e-12
    gate = keel(stack, "agent", "promote", AGENT, strict, "--require-eval")
    assert gate.returncode == 2 and "failed its latest evaluation" in gate.stderr, gate.stderr
    log = await read_config_log(client_config(stack.settings), stack.catalogue, stack.settings)
    assert log.labels[AGENT].stable == passing and not log.evaluations[AGENT, strict].passed
