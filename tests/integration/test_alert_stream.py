"""In-stream alerts on the real broker: `keel aggregate` fires once per incident and resolves it, also across
a crash, and `keel alerts relay` brings both to real HTTP receivers standing in for Slack and PagerDuty."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Stack, aggregator, committed_offsets, free_port, run_through, worker_stack
from receivers import Answer, receiver
from sample_alerts import agent_alert

from streams.alerts.records import RUNBOOK_ANCHORS, alert_record, runbook_url
from streams.cli.local_stack import simulator_process, worker_process
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import alert_relay_group
from streams.core import wire
from streams.core.alert import Alert
from streams.core.catalogue import Catalogue
from streams.core.settings import REPO_ROOT
from streams.kafka.alert_log import read_alerts
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer

RULES = """
version: 1
resolution_s: 1s
clear_after_s: 3s
rules:
  - {name: consecutive_failures, kind: consecutive_failures, threshold: 3, severity: critical}
  - {name: circuit_open, kind: circuit_open, window: 30s, severity: error}
"""


def audit_value(agent: str, *, outcome: str = "dead_letter", reason: str = "provider_5xx") -> dict[str, Any]:
    failed = outcome == "dead_letter"
    error = {"stage": "model", "error_class": "ProviderServerError", "reason": reason, "message": "m"}
    return {
        "event_id": f"{agent}-{uuid.uuid4().hex[:8]}",
        "agent": agent,
        "agent_version": "1",
        "config_version": "c",
        "tenant": "acme",
        "input_topic": "support.tickets",
        "input_partition": 0,
        "input_offset": 0,
        "prompt_version": "p",
        "provider": "sim",
        "model": "m",
        "attempts": 1,
        "outcome": outcome,
        "error": error if failed else None,
        "received_at": int(time.time() * 1000),
        "decode_ms": 0.1,
        "model_ms": 10.0,
        "total_ms": 12.0,
    }


async def publish_audit(stack: Stack, catalogue: Catalogue, values: list[dict[str, Any]]) -> list[str]:
    schema = catalogue.by_subject("keel.audit-value")
    topic = stack.topic("keel.audit")
    records = [OutRecord(topic, v["event_id"].encode(), wire.encode(schema, v), ()) for v in values]
    async with RecordProducer(client_config(stack.settings)) as producer:
        await producer.send_all(records)
    return [v["event_id"] for v in values]


async def alerts_about(
    stack: Stack, catalogue: Catalogue, key: str, done: Callable[[list[Alert]], bool], *, wait_s: float = 60
) -> list[Alert]:
    """The alerts with dedup key ``key``, once ``done`` says so or the wait runs out."""
    deadline = time.monotonic() + wait_s
    while True:
        alerts = [a for a in await read_alerts(stack.settings, catalogue) if a.dedup_key == key]
        if done(alerts) or time.monotonic() > deadline:
            return alerts
        await asyncio.sleep(0.5)


def statuses(alerts: list[Alert]) -> list[str]:
    return [a.status for a in alerts]


def alert_aggregator(
    stack: Stack, rules: Path, **env: str
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    settings = {"KEEL_ALERT_RULES_FILE": str(rules), "KEEL_ALERT_EVAL_INTERVAL_S": "0.5"}
    settings |= {"KEEL_SESSION_TIMEOUT_S": "6", "KEEL_HEARTBEAT_INTERVAL_S": "1"}
    return aggregator(stack, **settings, **env)


def relay(stack: Stack, **env: str) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return worker_process(stack.settings, {"KEEL_ALERT_RETRY_BASE_S": "0.2", **env}, command="alerts", args=("relay",))


def keel(stack: Stack, *args: str) -> str:
    environment = {**os.environ, "KEEL_BOOTSTRAP_SERVERS": stack.settings.bootstrap_servers}
    environment["KEEL_NAMESPACE"] = stack.settings.namespace
    command = [sys.executable, "-m", "streams.cli", *args]
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=True
    )
    return done.stdout


def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "alert_rules.yaml"
    path.write_text(RULES)
    return path


async def test_an_incident_fires_once_resolves_once_and_reaches_slack_and_the_webhook(
    kafka_bootstrap: str, tmp_path: Path, catalogue: Catalogue
) -> None:
    key = "consecutive_failures:agent=probe"
    async with (
        receiver() as slack_hook,
        receiver(Answer(503), accept=Answer(202)) as pager_hook,  # down at first: the relay tries again
    ):
        sinks = {"KEEL_ALERT_SLACK_WEBHOOK_URL": slack_hook.url, "KEEL_ALERT_WEBHOOK_URL": pager_hook.url}
        sinks["KEEL_ALERT_WEBHOOK_ROUTING_KEY"] = "routing-key-123"
        with (
            worker_stack(
                kafka_bootstrap, tmp_path, provider="sim", base_url="http://127.0.0.1:9/v1", start=False
            ) as stack,
            alert_aggregator(stack, rules_file(tmp_path)),
            relay(stack, **sinks),
        ):
            failed = await publish_audit(stack, catalogue, [audit_value("probe") for _ in range(3)])
            firing = await alerts_about(stack, catalogue, key, lambda a: len(a) >= 1)
            assert statuses(firing) == ["firing"]
            failed += await publish_audit(stack, catalogue, [audit_value("probe") for _ in range(4)])
            await asyncio.sleep(3)  # still failing: nothing new
            assert statuses(await alerts_about(stack, catalogue, key, lambda a: True)) == ["firing"]
            await publish_audit(stack, catalogue, [audit_value("probe", outcome="result")])
            both = await alerts_about(stack, catalogue, key, lambda a: len(a) >= 2)
            await asyncio.sleep(4)  # and nothing after the resolved one
            assert statuses(await alerts_about(stack, catalogue, key, lambda a: True)) == ["firing", "resolved"]
            slack_bodies = await slack_hook.wait_for(2)
            pager_bodies = await pager_hook.wait_for(2)
    fired, resolved = both
    assert fired.observed == 3 and fired.threshold == 3 and fired.severity == "critical" and fired.agent == "probe"
    assert set(fired.sample_event_ids) == set(failed[:3])  # keyed by event id: spread over partitions, any order
    assert fired.runbook_url == "docs/runbooks.md#runbook-consecutive-failures"
    assert resolved.started_at_ms == fired.started_at_ms and resolved.at_ms - fired.at_ms >= 3000
    assert [b["text"].split(" ")[1] for b in slack_bodies] == ["FIRING", "RESOLVED"]
    assert [r.status for r in pager_hook.received] == [503, 202, 202]
    assert [b["event_action"] for b in pager_bodies] == ["trigger", "resolve"]
    assert {b["dedup_key"] for b in pager_bodies} == {key} and pager_bodies[0]["routing_key"] == "routing-key-123"
    assert pager_bodies[0]["payload"]["custom_details"]["sample_event_ids"] == list(fired.sample_event_ids)


async def test_an_incident_open_before_a_crash_is_not_fired_again_after_it(
    kafka_bootstrap: str, tmp_path: Path, catalogue: Catalogue
) -> None:
    key, witness = "consecutive_failures:agent=probe", "consecutive_failures:agent=witness"
    rules = rules_file(tmp_path)
    with worker_stack(
        kafka_bootstrap, tmp_path, provider="sim", base_url="http://127.0.0.1:9/v1", start=False
    ) as stack:
        with alert_aggregator(stack, rules) as first:
            await publish_audit(stack, catalogue, [audit_value("probe") for _ in range(3)])
            assert statuses(await alerts_about(stack, catalogue, key, lambda a: len(a) >= 1)) == ["firing"]
            first.kill()  # no goodbye: its incidents are only in keel.alerts
            first.wait()
        await publish_audit(stack, catalogue, [audit_value("probe") for _ in range(3)])  # still failing
        with alert_aggregator(stack, rules):
            await publish_audit(stack, catalogue, [audit_value("witness") for _ in range(3)])
            assert statuses(await alerts_about(stack, catalogue, witness, lambda a: len(a) >= 1)) == ["firing"]
            await asyncio.sleep(2)  # the restarted evaluator has evaluated the probe too by now
            assert statuses(await alerts_about(stack, catalogue, key, lambda a: True)) == ["firing"]
            await publish_audit(stack, catalogue, [audit_value("probe", outcome="review")])
            alerts = await alerts_about(stack, catalogue, key, lambda a: len(a) >= 2)
            await asyncio.sleep(2)
            alerts = await alerts_about(stack, catalogue, key, lambda a: True)
    assert statuses(alerts) == ["firing", "resolved"]
    assert alerts[1].started_at_ms == alerts[0].started_at_ms


async def test_failures_of_a_real_worker_fire_and_resolve_consecutive_failure_and_circuit_alerts(
    kafka_bootstrap: str, tmp_path: Path, catalogue: Catalogue, make_event
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("window: 30s", "window: 5s"))
    keys = ["consecutive_failures:agent=support_triage", "circuit_open:agent=support_triage"]
    with (
        simulator_process(tmp_path, "--seed", "4") as sim_url,
        worker_stack(
            kafka_bootstrap, tmp_path, provider="sim", base_url=sim_url, env={"KEEL_CIRCUIT_COOLDOWN_S": "1"}
        ) as stack,
        alert_aggregator(stack, rules),
    ):
        # one key, so they run in order: the first fails on 5xx three times, which opens the circuit
        failing = [
            make_event(business_key="C-1", payload={"ticket_id": f"T-{i}", "body": "down [[sim:5xx]]"})
            for i in range(3)
        ]
        ids, tally = await run_through(stack, events={"support.tickets": failing})
        assert sorted(tally.outcomes(i)[0].value["reason"] for i in ids) == [
            "circuit_open",
            "circuit_open",
            "provider_5xx",
        ]
        fired = {key: await alerts_about(stack, catalogue, key, lambda a: len(a) >= 1) for key in keys}
        assert {key: statuses(alerts) for key, alerts in fired.items()} == {key: ["firing"] for key in keys}
        assert set(fired[keys[0]][0].sample_event_ids) == set(ids)
        await asyncio.sleep(1.5)  # the circuit's cooldown: the next call probes the model and closes it
        healthy = [make_event(business_key="C-1", payload={"ticket_id": f"H-{i}", "body": "fine"}) for i in range(2)]
        _, tally = await run_through(stack, events={"support.tickets": healthy})
        assert all(tally.outcome_kinds(e.event_id) == ["result"] for e in healthy)
        ended = {key: await alerts_about(stack, catalogue, key, lambda a: len(a) >= 2) for key in keys}
    assert {key: statuses(alerts) for key, alerts in ended.items()} == {key: ["firing", "resolved"] for key in keys}


async def relayed(stack: Stack) -> int:
    """How many alerts the relay has committed: those every sink took."""
    group = alert_relay_group(stack.settings)
    committed, _ = await committed_offsets(stack, "keel.alerts", group=group, wait_s=0.5)  # one reading
    return sum(max(offset, 0) for offset in committed.values())


async def test_the_relay_commits_an_alert_only_once_every_sink_took_it(
    kafka_bootstrap: str, tmp_path: Path, catalogue: Catalogue
) -> None:
    """An alert published by other code (a budget threshold) through ``alert_record``; the webhook is
    down at first, so the relay waits with its offset uncommitted, and delivers once it is back."""
    port = free_port()
    with worker_stack(
        kafka_bootstrap, tmp_path, provider="sim", base_url="http://127.0.0.1:9/v1", start=False
    ) as stack:
        now_ms = int(time.time() * 1000)
        budget = agent_alert(
            rule="budget",
            severity="warning",
            scope="support_triage",
            observed=41.0,
            threshold=40.0,
            unit="usd",
            window="1d",
            summary="support_triage has spent 80% of its daily budget (41.00 of 50.00 USD)",
            runbook_url=runbook_url(stack.settings, RUNBOOK_ANCHORS["budget"]),
            at_ms=now_ms,
            agent="support_triage",
        )
        async with RecordProducer(client_config(stack.settings)) as producer:
            await producer.send_all([alert_record(catalogue, stack.settings, budget)])
        listing = keel(stack, "alerts", "list", "--open")
        assert "firing   warning  budget:agent=support_triage" in listing and "1 open incident(s)" in listing
        async with receiver() as slack_hook:
            sinks = {
                "KEEL_ALERT_SLACK_WEBHOOK_URL": slack_hook.url,
                "KEEL_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{port}/hook",
            }
            with relay(stack, **sinks, KEEL_ALERT_RETRY_MAX_S="0.5"):
                assert len(await slack_hook.wait_for(1)) == 1
                await asyncio.sleep(3)  # the webhook still refuses connections
                assert await relayed(stack) == 0
                async with receiver(port=port, accept=Answer(202)) as pager_hook:
                    [event] = await pager_hook.wait_for(1)
                    for _ in range(60):
                        if await relayed(stack) == 1:
                            break
                        await asyncio.sleep(0.5)
                    assert await relayed(stack) == 1
    assert event["event_action"] == "trigger" and event["payload"]["class"] == "budget"
    assert event["links"] == [{"href": "docs/runbooks.md#runbook-budget", "text": "Runbook: budget"}]
    assert "routing_key" not in event and len(slack_hook.received) == 1


async def test_two_aggregators_share_the_scopes_and_each_incident_fires_once(
    kafka_bootstrap: str, tmp_path: Path, catalogue: Catalogue
) -> None:
    probes, witnesses = [f"probe{i}" for i in range(6)], [f"witness{i}" for i in range(6)]

    def key(agent: str) -> str:
        return f"consecutive_failures:agent={agent}"

    async def fail(agents: list[str]) -> None:
        await publish_audit(stack, catalogue, [audit_value(agent) for agent in agents for _ in range(3)])

    async def all_alerts() -> dict[str, list[str]]:
        history = await read_alerts(stack.settings, catalogue)
        return {agent: statuses([a for a in history if a.dedup_key == key(agent)]) for agent in probes + witnesses}

    async def until(done: Callable[[dict[str, list[str]]], bool]) -> dict[str, list[str]]:
        for _ in range(120):
            seen = await all_alerts()
            if done(seen):
                break
            await asyncio.sleep(0.5)
        return seen

    rules = rules_file(tmp_path)
    with worker_stack(
        kafka_bootstrap, tmp_path, provider="sim", base_url="http://127.0.0.1:9/v1", start=False
    ) as stack:
        log_path = stack.settings.state_dir / "logs" / f"aggregate-{stack.settings.namespace}.log"
        with alert_aggregator(stack, rules):
            await fail(probes)
            seen = await until(lambda s: all(s[p] for p in probes))
            assert all(seen[p] == ["firing"] for p in probes), seen
            with alert_aggregator(stack, rules):  # a second one: the partitions are shared out again
                await fail(probes)  # still failing
                await fail(witnesses)
                seen = await until(lambda s: all(s[w] for w in witnesses))
                await asyncio.sleep(2)
                seen = await all_alerts()
                assert all(seen[a] == ["firing"] for a in probes + witnesses), seen
                await publish_audit(stack, catalogue, [audit_value(p, outcome="result") for p in probes])
                seen = await until(lambda s: all(len(s[p]) >= 2 for p in probes))
    assert all(seen[p] == ["firing", "resolved"] for p in probes), seen
    takeovers = [len(m.split(",")) for m in re.findall(r"took over partitions \[([\d, ]+)\]", log_path.read_text())]
    assert takeovers[0] == 4 and takeovers.count(2) >= 2  # the first alone, then two partitions each
