"""Agent versions on the real broker: `keel agent deploy` publishes a version while events flow, a canary
takes its share of events, and promote and rollback reach two running workers without a restart.
Every event ends in exactly one outcome that names the version that decided it. Prints how long a
switch took to reach every input partition (and so both workers)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from harness import OPERATOR, Stack, aggregator, keel_cli, worker_stack

from streams.agent.versions import routed_version
from streams.cli.local_stack import worker_process
from streams.cli.publish import load_samples, take
from streams.cli.watch import OutcomeWatcher, Tally, outcome_topics
from streams.contracts.headers import H_EVENT_ID
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import AGENT_CONFIGS, intake_group
from streams.core.settings import REPO_ROOT
from streams.kafka.agent_configs import read_config_log
from streams.kafka.alert_log import read_alerts
from streams.kafka.connection import client_config
from streams.kafka.consumers import read_to_end
from streams.kafka.producer import RecordProducer
from streams.pipeline.decode import encode_request

pytestmark = pytest.mark.integration
AGENT = "support_triage"


def keel(stack: Stack, *args: str) -> str:
    done = keel_cli(stack, *args, timeout_s=90)
    assert done.returncode == 0, f"keel {' '.join(args)}: {done.stderr[-2000:]}"
    return done.stdout


def second_version(stack: Stack, folder: Path, *, line: str = "Answer in as few words as the schema allows.") -> Path:
    """The shipped agent with another line in its system prompt: what a prompt fix looks like."""
    document = yaml.safe_load((stack.settings.agents_dir / f"{AGENT}.yaml").read_text())
    document["prompt"]["system"] += f"\n{line}"
    path = folder / f"{AGENT}-v2.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@contextlib.contextmanager
def two_workers(stack: Stack) -> Iterator[list[subprocess.Popen[bytes]]]:
    with contextlib.ExitStack() as running:
        processes = [running.enter_context(worker_process(stack.settings, stack.worker_env)) for _ in range(2)]
        yield processes
        for process in processes:
            assert process.poll() is None, f"a worker exited: see {stack.settings.state_dir}/logs"


async def members(stack: Stack) -> int:
    admin = AIOKafkaAdminClient(**client_config(stack.settings).kwargs())
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([intake_group(stack.settings)])
    except GroupCoordinatorNotAvailableError:  # the group's coordinator is not there yet
        return 0
    finally:
        await admin.close()
    _error, _group, state, _kind, _protocol, joined, *_ = described[0].groups[0]  # aiokafka gives the raw response
    return len(joined) if state == "Stable" else 0


class Flow:
    """Events published a few at a time, their input partitions noted, their outcomes read."""

    def __init__(self, stack: Stack) -> None:
        self.stack, self.partition_of, self.tally = stack, dict[str, int](), Tally()
        self._samples = load_samples(REPO_ROOT / "deploy" / "samples" / f"{AGENT}.jsonl")

    async def publish(self, count: int) -> None:
        topic, catalogue = self.stack.topic("support.tickets"), self.stack.catalogue
        events = take(self._samples, count)
        records = [
            OutRecord(topic, e.event_id.encode(), encode_request(catalogue, e), ((H_EVENT_ID, e.event_id.encode()),))
            for e in events
        ]  # fmt: skip  (keyed by event id: spread over every partition)
        async with RecordProducer(client_config(self.stack.settings)) as producer:
            positions = await producer.send_all(records)
        self.partition_of.update((e.event_id, p) for e, (_, p, _) in zip(events, positions, strict=True))

    def ended(self) -> bool:
        return all(self.tally.ended(i) for i in self.partition_of)

    def versions(self) -> dict[str, str]:
        """The config version that decided each event, by its result."""
        return {i: r[0].value["config_version"] for i, r in self.tally.by_kind["result"].items()}


@contextlib.asynccontextmanager
async def flowing(stack: Stack, flow: Flow, *, every_s: float = 0.2) -> AsyncIterator[None]:
    watcher = OutcomeWatcher(client_config(stack.settings), stack.catalogue, outcome_topics(stack.settings, [AGENT]))
    await watcher.start()
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set() or not flow.ended():
            for observed in await watcher.poll(timeout_s=0.5):
                flow.tally.add(observed)

    async def publish() -> None:
        while not stop.is_set():
            await flow.publish(4)
            await asyncio.sleep(every_s)

    tasks = [asyncio.create_task(read()), asyncio.create_task(publish())]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=stack.wait_s)
        await watcher.stop()


async def labels_written_at(stack: Stack) -> int:
    """The timestamp of the newest labels record: when the switch was published."""
    tp = TopicPartition(stack.topic(AGENT_CONFIGS), 0)
    stamps = [
        m.timestamp async for m in read_to_end(client_config(stack.settings), [tp]) if m.key.startswith(b"labels/")
    ]
    return stamps[-1]


async def switch_ms(stack: Stack, flow: Flow, version: str) -> int:
    """From the labels record to the first result by ``version`` in every input partition (the last of those)."""
    since = await labels_written_at(stack)
    deadline = time.monotonic() + 60
    while True:
        firsts: dict[int, int] = {}
        for event_id, results in flow.tally.by_kind["result"].items():
            if results[0].value["config_version"].startswith(version) and results[0].timestamp_ms >= since:
                partition = flow.partition_of[event_id]
                firsts[partition] = min(firsts.get(partition, results[0].timestamp_ms), results[0].timestamp_ms)
        if len(firsts) == stack.settings.partitions:
            return int(max(firsts.values()) - since)
        assert time.monotonic() < deadline, f"{version} reached partitions {sorted(firsts)} only"
        await asyncio.sleep(0.2)


async def test_deploy_canary_promote_and_rollback_reach_running_workers(
    kafka_bootstrap: str, sim_url: str, tmp_path: Path
) -> None:
    with (
        worker_stack(kafka_bootstrap, tmp_path, provider="sim", base_url=sim_url, start=False) as stack,
        two_workers(stack),
    ):
        deadline = time.monotonic() + 90
        while await members(stack) < 2:  # both in the group: the partitions are shared out
            assert time.monotonic() < deadline, "the two workers never both joined"
            await asyncio.sleep(0.5)
        flow = Flow(stack)
        async with flowing(stack, flow):
            deployed = keel(stack, "agent", "deploy", str(second_version(stack, tmp_path)), "-m", "shorter answers")
            log = await read_config_log(client_config(stack.settings), stack.catalogue, stack.settings)
            first, second = (v.version_id for v in log.history(AGENT))
            assert f"deployed {second}" in deployed and log.labels[AGENT].stable == first
            assert second in keel(stack, "agent", "versions", AGENT) and "shorter answers" in keel(
                stack, "agent", "versions", AGENT
            )
            assert "== prompt" in keel(stack, "agent", "diff", AGENT, first, second)
            await asyncio.sleep(2)
            keel(stack, "agent", "promote", AGENT, second, "--canary", "20")
            canary_ms = await switch_ms(stack, flow, second)
            canary = (await read_config_log(client_config(stack.settings), stack.catalogue, stack.settings)).labels[
                AGENT
            ]
            await asyncio.sleep(4)
            keel(stack, "agent", "promote", AGENT, second)
            promoted_at = await labels_written_at(stack)
            promote_ms = await switch_ms(stack, flow, second)
            await asyncio.sleep(2)
            keel(stack, "agent", "rollback", AGENT, "-m", "back to the file's")
            rollback_ms = await switch_ms(stack, flow, first)
            await asyncio.sleep(2)
        history = keel(stack, "agent", "history", AGENT).splitlines()[1:]
    print(f"\nswitch reached every partition (2 workers) after: canary {canary_ms} ms, promote {promote_ms} ms, "
          f"rollback {rollback_ms} ms")  # fmt: skip
    # The audit trail of the changes, oldest first: who made each, from which version to which, and why
    changes = [(row.split()[2], row.split()[3]) for row in history]
    assert changes == [(OPERATOR, c) for c in ("promote", "deploy", "canary", "promote", "rollback")], history
    assert f"its file -> stable {first}" in history[0] and f"{first} -> {second} (not live)" in history[1]
    assert f"-> stable {first}, canary {second} for 20% of events" in history[2]
    assert f"stable {second} -> stable {first}" in history[4] and history[4].endswith("back to the file's")
    for event_id in flow.partition_of:
        assert len(flow.tally.outcomes(event_id)) == 1, f"{event_id}: {flow.tally.outcome_kinds(event_id)}"
    versions = flow.versions()
    assert {v.split("-")[0] for v in versions.values()} == {first, second}  # every result names its version
    # Decided while the canary ran everywhere (a margin for events that started before): by event id
    start, end = canary.at_ms + canary_ms + 2_000, promoted_at
    window = {i: v for i, v in versions.items() if start <= flow.tally.by_kind["result"][i][0].timestamp_ms < end}
    assert len(window) >= 20, f"{len(window)} events decided in the canary's window"
    assert {i: routed_version(canary, i) for i in window} == {i: v.split("-")[0] for i, v in window.items()}


async def test_a_canary_worse_than_stable_is_rolled_back_with_an_alert(
    kafka_bootstrap: str, sim_url: str, tmp_path: Path
) -> None:
    """The canary's prompt makes the model answer with prose around its JSON (the simulator's
    ``malformed``): its events end as dead letters, the judge in `keel aggregate` rolls it back."""
    broken = "[[sim:malformed]]"
    with (
        worker_stack(kafka_bootstrap, tmp_path, provider="sim", base_url=sim_url, start=False) as stack,
        worker_process(stack.settings, stack.worker_env) as worker,
        aggregator(stack, KEEL_ALERT_EVAL_INTERVAL_S="0.5") as aggregate,
    ):
        flow = Flow(stack)
        async with flowing(stack, flow, every_s=0.1):
            keel(stack, "agent", "deploy", str(second_version(stack, tmp_path, line=broken)))
            log = await read_config_log(client_config(stack.settings), stack.catalogue, stack.settings)
            first, second = (v.version_id for v in log.history(AGENT))
            keel(stack, "agent", "promote", AGENT, second, "--canary", "20")
            deadline = time.monotonic() + 240
            while (labels := log.labels[AGENT]).change != "rollback_canary":
                assert worker.poll() is None and aggregate.poll() is None, f"see {stack.settings.state_dir}/logs"
                assert time.monotonic() < deadline, f"no rollback; labels: {labels}"
                await asyncio.sleep(1)
                log = await read_config_log(client_config(stack.settings), stack.catalogue, stack.settings)
            rolled_back_at = labels.at_ms
            history = keel(stack, "agent", "history", AGENT).splitlines()
            # Its dead letters re-decided: one by the stable version (as live), one pinned to the canary's
            dead = [
                i
                for i, o in flow.tally.by_kind["dead_letter"].items()
                if o[0].value["config_version"].startswith(second)
            ]
            keel(stack, "dlq", "replay", dead[0], "--agent", AGENT)
            keel(stack, "dlq", "replay", dead[1], "--agent", AGENT, "--config-version", second[:6])
            replayed = dead[:2]
            deadline = time.monotonic() + 60
            while not all(len(flow.tally.outcomes(i)) == 2 for i in replayed):
                assert time.monotonic() < deadline, [flow.tally.outcome_kinds(i) for i in replayed]
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)
        alerts = [a for a in await read_alerts(stack.settings, stack.catalogue) if a.rule == "canary_rollback"]
    assert (labels.stable, labels.canary, labels.previous_canary, labels.author) == (
        first,
        None,
        second,
        "keel aggregate",
    )
    assert labels.message.startswith("automatic rollback: dead letters per event: canary 100.0%")
    assert f"keel aggregate   rollback_canary  stable {first}, canary {second} -> stable {first}" in history[-1]
    assert "automatic rollback: dead letters per event" in history[-1]
    assert len(alerts) == 1 and alerts[0].agent == AGENT and alerts[0].severity == "error"
    assert alerts[0].runbook_url.endswith("docs/runbooks.md#runbook-canary-rollback")
    assert second in alerts[0].summary and "dead letters per event" in alerts[0].details["reasons"]
    for event_id in flow.partition_of:
        expected = 2 if event_id in replayed else 1
        assert len(flow.tally.outcomes(event_id)) == expected, f"{event_id}: {flow.tally.outcome_kinds(event_id)}"
    [stable_replay], [pinned_replay] = (
        sorted(flow.tally.outcomes(i), key=lambda o: o.timestamp_ms)[1:] for i in replayed
    )
    # decided by the stable version (whatever it made of it: the simulator's answers follow the prompt)
    assert stable_replay.value["config_version"].startswith(first)
    assert pinned_replay.kind == "dead_letter" and pinned_replay.value["config_version"].startswith(second)
    assert pinned_replay.value["pass_number"] == 1
    decided = {i: o[0] for i in flow.partition_of for o in [flow.tally.outcomes(i)]}
    by_canary = [o for o in decided.values() if o.value["config_version"].startswith(second)]
    assert by_canary and all(o.kind == "dead_letter" for o in by_canary)
    late = [o for o in decided.values() if o.timestamp_ms > rolled_back_at + 2_000]
    assert late and all(o.value["config_version"].startswith(first) for o in late)  # stable only, after it
