"""Keel on the secured broker (SASL_SSL, SCRAM users, StandardAuthorizer with no ACL meaning no access):
the main path with one principal per process and the ACLs `keel acl apply` creates; the refusals least
privilege promises; start-up errors that name the setting or the ACL; and no password anywhere in the
logs or records."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import TopicAuthorizationFailedError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from harness import (
    Stack,
    aggregator,
    assert_exactly_one_outcome_and_audit,
    free_port,
    get_when_up,
    run_through,
    worker_stack,
)
from receivers import receiver
from registry_endpoint import catalogue_store, read_all, serving
from secure_cluster import SecureCluster, read_refused, subscriber, text_files

from streams.agent.definition import load_agents
from streams.cli.budget_report import settled_spend
from streams.cli.demo import review_service
from streams.cli.local_stack import worker_process
from streams.cli.publish import load_samples, take
from streams.cli.usage_report import WindowRow, read_windows
from streams.contracts.acls import acl_plan
from streams.core import wire
from streams.core.kafka_client import ClientConfig
from streams.cost.usage_windows import MINUTE
from streams.kafka.acl_admin import apply_plan
from streams.kafka.consumers import read_to_end
from tests.keel_command import run_keel

pytestmark = pytest.mark.integration
HANDOFF = {"invoice_extraction": {"rules": [{"name": "large", "route": "review", "field": "total", "above": 50}]}}
AGENTS = ("support_triage", "invoice_extraction")
RULES = """
version: 1
resolution_s: 1s
clear_after_s: 3s
rules:
  - {name: dead_letters, kind: dead_letters, window: 30s, threshold: 1, severity: warning}
"""


@pytest.fixture(scope="module")
def stack(secure_kafka: SecureCluster, sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Topics created as the admin, then the plan's ACLs applied (twice: idempotent)."""
    with worker_stack(
        secure_kafka.bootstrap, tmp_path_factory.mktemp("keel-secure"), provider="sim", base_url=sim_url,
        start=False, handoff=HANDOFF, budget={"daily_usd": 100.0}, namespace=secure_kafka.namespace,
        security=secure_kafka.security(),
    ) as stack:  # fmt: skip
        principals = acl_plan(load_agents(stack.settings.agents_dir, stack.catalogue), stack.settings)
        created, existing = apply_plan(secure_kafka.client(), principals)
        assert created > 0 and existing == 0
        for _ in range(40):  # the broker applies new ACLs from its metadata log a moment later
            again = apply_plan(secure_kafka.client(), principals)
            if again == (0, created):
                break
            time.sleep(0.25)
        assert again == (0, created)  # idempotent: nothing created twice
        yield stack


def as_worker(cluster: SecureCluster, agent: str, *, user: str | None = None) -> dict[str, str]:
    return {"KEEL_AGENTS": f'["{agent}"]', **cluster.environment(user or cluster.principal(f"worker-{agent}"))}


async def windows_of(stack: Stack, agent: str, *, wait_s: float) -> list[WindowRow]:
    deadline = time.monotonic() + wait_s
    while True:
        rows = [r for r in await read_windows(stack.settings, MINUTE, dimension="agent") if r.value == agent]
        if sum(r.stats.calls for r in rows) >= 12 or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1)


@contextlib.contextmanager
def workers(stack: Stack, cluster: SecureCluster) -> Iterator[list[subprocess.Popen[bytes]]]:
    with contextlib.ExitStack() as running:
        processes = [
            running.enter_context(worker_process(stack.settings, {**stack.worker_env, **as_worker(cluster, agent)}))
            for agent in AGENTS
        ]
        yield processes
        for process in processes:
            assert process.poll() is None, (
                f"a worker exited with {process.returncode}: see {stack.settings.state_dir}/logs"
            )


async def test_the_main_path_runs_with_a_principal_per_worker(
    stack: Stack, secure_kafka: SecureCluster, samples_dir: Path
) -> None:
    """Workers (each with its budget owner and client), the aggregator (usage windows and alert rules) and
    the alert relay, each as its own principal; the budget ledger read back as the operator."""
    events = {
        "support.tickets": take(load_samples(samples_dir / "support_triage.jsonl"), 12),
        "finance.invoices": take(load_samples(samples_dir / "invoice_extraction.jsonl"), 12),
    }
    rules = stack.settings.state_dir / "alert_rules.yaml"
    rules.write_text(RULES)
    principal = secure_kafka.principal
    alerting = {"KEEL_ALERT_RULES_FILE": str(rules), "KEEL_ALERT_EVAL_INTERVAL_S": "0.5"}
    async with receiver() as hook:
        relaying = worker_process(
            stack.settings, {**stack.worker_env, "KEEL_ALERT_WEBHOOK_URL": hook.url,
                             **secure_kafka.environment(principal("relay"))},
            command="alerts", args=("relay",),
        )  # fmt: skip
        aggregating = aggregator(stack, **alerting, **secure_kafka.environment(principal("aggregator")))
        with workers(stack, secure_kafka), aggregating as aggregate, relaying as relay:
            ids, tally = await run_through(stack, events=events, raw=[(b"k", b"not an Avro request")])
            windows = await windows_of(stack, "support_triage", wait_s=60)  # faust, as the aggregator's principal
            delivered = await hook.wait_for(1, wait_s=90)  # the dead letter's alert, through the relay
            for name, process in (("aggregate", aggregate), ("alerts relay", relay)):
                assert process.poll() is None, f"keel {name} exited: see {stack.settings.state_dir}/logs"
    assert sum(row.stats.calls for row in windows) >= 12
    assert_exactly_one_outcome_and_audit(ids, tally)
    summary = tally.summary(ids)
    assert summary["events"] == 25 and summary["missing"] == 0
    assert summary["results"] > 0 and summary["review"] > 0 and summary["dead_letters"] == 1
    assert summary["audit"] == 25 and summary["usage"] >= 24
    assert [body["event_action"] for body in delivered[:1]] == ["trigger"]
    assert delivered[0]["dedup_key"] == "dead_letters:agent=support_triage"
    operator = stack.settings.model_copy(update=secure_kafka.security(principal("operator")).model_dump())
    for agent in AGENTS:  # what the budget owners settled, read back as the operator
        assert (await settled_spend(operator, f"agent:{agent}")).usd > 0, agent


def test_a_confluent_consumer_decodes_the_results_through_the_registry_api(
    stack: Stack, secure_kafka: SecureCluster
) -> None:
    """Downstream, with no Keel code: librdkafka over SASL_SSL (as the cluster's admin: a downstream
    team's principal and its ACLs are the estate's, not Keel's plan) and confluent-kafka's AvroDeserializer
    through Keel's registry endpoint read what the main path above wrote, every field as Keel reads it."""
    results, dlq = stack.topic("support_triage.results"), stack.topic("support_triage.dlq")
    connection = secure_kafka.client().confluent()
    messages = [
        *read_all(secure_kafka.bootstrap, [results], 1, timeout_s=60, connection=connection),
        *read_all(secure_kafka.bootstrap, [dlq], 1, timeout_s=60, connection=connection),
    ]
    assert {m.topic() for m in messages} == {results, dlq}, "the main path's results and dead letter"
    agents = load_agents(stack.settings.agents_dir, stack.catalogue)
    with serving(catalogue_store(stack.catalogue, agents, stack.settings)) as url:
        deserialize = AvroDeserializer(SchemaRegistryClient({"url": url}))
        for message in messages:
            decoded = deserialize(message.value(), SerializationContext(message.topic(), MessageField.VALUE))
            assert decoded == wire.decode(stack.catalogue, message.value()), message.topic()


async def count(kafka: ClientConfig, topic: str, partitions: int) -> int:
    return len([m async for m in read_to_end(kafka, [TopicPartition(topic, p) for p in range(partitions)])])


async def test_the_review_service_decides_as_its_own_principal(stack: Stack, secure_kafka: SecureCluster) -> None:
    """After the main path: its held invoices are decided through the API; the decision is written and
    applied (a result) by the review service's principal, the only one that may."""
    settings = stack.settings.model_copy(update={"review_web_port": free_port()})
    results = stack.topic("invoice_extraction.results")
    before = await count(secure_kafka.client(), results, settings.partitions)
    env = {**stack.worker_env, **secure_kafka.environment(secure_kafka.principal("review"))}
    with review_service(settings, env) as sign_in:
        url, rest = sign_in.split(" ", 1)
        user, password = re.fullmatch(r"\(user (\S+), password (\S+)\)", rest).groups()  # type: ignore[union-attr]
        listed = await get_when_up(f"{url}api/v1/items", auth=(user, password))
        assert listed.status_code == 200 and listed.json()["items"], listed.text
        item = listed.json()["items"][0]["id"]
        async with httpx.AsyncClient(auth=(user, password), timeout=30) as client:
            decided = await client.post(f"{url}api/v1/items/{item}/decision", json={"action": "approve"})
        assert decided.status_code == 201, decided.text
        deadline = time.monotonic() + 30
        while await count(secure_kafka.client(), results, settings.partitions) == before:
            assert time.monotonic() < deadline, "the approved item never became a result"
            await asyncio.sleep(1)


async def read_allowed(kafka: ClientConfig, topic: str) -> int:
    consumer = subscriber(kafka, topic)
    try:
        async with asyncio.timeout(30):
            await consumer.start()
            return sum(len(batch) for batch in (await consumer.getmany(timeout_ms=3000)).values())
    finally:
        await consumer.stop()


async def write_refused(kafka: ClientConfig, topic: str) -> None:
    producer = AIOKafkaProducer(**kafka.kwargs(), request_timeout_ms=10_000)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(topic, b"value", key=b"k")
    finally:
        await producer.stop()


async def test_agent_a_cannot_read_b_input_nor_write_b_results(stack: Stack, secure_kafka: SecureCluster) -> None:
    triage = secure_kafka.client(secure_kafka.principal("worker-support_triage"))
    await read_refused(triage, stack.topic("finance.invoices"))
    await write_refused(triage, stack.topic("invoice_extraction.results"))
    assert await read_allowed(triage, stack.topic("support.tickets")) > 0  # its own input: allowed


async def test_no_worker_writes_review_decisions(stack: Stack, secure_kafka: SecureCluster) -> None:
    for agent in AGENTS:
        await write_refused(
            secure_kafka.client(secure_kafka.principal(f"worker-{agent}")), stack.topic("keel.review.decisions")
        )


async def test_only_the_aggregator_reads_the_audit_topic(stack: Stack, secure_kafka: SecureCluster) -> None:
    for role in ("worker-support_triage", "relay", "review", "operator", "stranger"):
        await read_refused(secure_kafka.client(secure_kafka.principal(role)), stack.topic("keel.audit"))


def keel(stack: Stack, env: dict[str, str], *args: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    environment = {**stack_environment(stack), **env}
    return run_keel(*args, env=environment, timeout_s=timeout_s)


def stack_environment(stack: Stack) -> dict[str, str]:
    import os

    from streams.core.kafka_security import security_environment

    return {**os.environ, **security_environment(stack.settings), **stack.worker_env,
            "KEEL_BOOTSTRAP_SERVERS": stack.settings.bootstrap_servers, "KEEL_NAMESPACE": stack.settings.namespace,
            "KEEL_STATE_DIR": str(stack.settings.state_dir)}  # fmt: skip


def test_the_operator_runs_the_commands_of_its_plan(stack: Stack, secure_kafka: SecureCluster) -> None:
    operator = secure_kafka.environment(secure_kafka.principal("operator"))
    for command in (["topics"], ["dlq", "list"], ["alerts", "list"], ["usage"]):
        done = keel(stack, operator, *command)
        assert done.returncode == 0, f"keel {' '.join(command)}: {done.stderr[-2000:]}"
    assert "not an Avro request" not in keel(stack, operator, "dlq", "list").stderr
    refused = keel(stack, secure_kafka.environment(secure_kafka.principal("relay")), "dlq", "list", timeout_s=60)
    assert refused.returncode == 2 and "may not read" in refused.stderr  # the relay may not read dead letters


def test_a_worker_whose_principal_lacks_an_acl_names_it_at_start_up(stack: Stack, secure_kafka: SecureCluster) -> None:
    wrong = as_worker(secure_kafka, "support_triage", user=secure_kafka.principal("worker-invoice_extraction"))
    done = keel(stack, wrong, "worker")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "lacks ACLs" in done.stderr and f"READ on topic {stack.topic('support.tickets')}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_wrong_password_is_one_error_naming_the_setting(stack: Stack, secure_kafka: SecureCluster) -> None:
    env = {**as_worker(secure_kafka, "support_triage"), "KEEL_KAFKA_SASL_PASSWORD_FILE": "",
           "KEEL_KAFKA_SASL_PASSWORD": "canary-wrong-password-5e1"}  # fmt: skip
    done = keel(stack, env, "worker", timeout_s=60)
    assert done.returncode == 2 and "KEEL_KAFKA_SASL_PASSWORD" in done.stderr and "SaslAuthentication" in done.stderr
    assert "canary-wrong-password-5e1" not in done.stdout + done.stderr
    untrusted = {**as_worker(secure_kafka, "support_triage"), "KEEL_KAFKA_SSL_CA_FILE": ""}
    done = keel(stack, untrusted, "topics", timeout_s=60)
    assert done.returncode == 2 and "KEEL_KAFKA_SSL_CA_FILE" in done.stderr, done.stderr[-2000:]


async def every_record(kafka: ClientConfig, prefixes: tuple[str, ...]) -> list[bytes]:
    admin = AIOKafkaAdminClient(**kafka.kwargs())
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    blobs = [
        blob
        async for m in read_to_end(kafka, tps)
        for blob in (m.key or b"", m.value or b"", *(v for _, v in m.headers))
    ]
    assert len(topics) > 20 and blobs
    return blobs


async def test_no_password_reaches_a_log_or_a_record(stack: Stack, secure_kafka: SecureCluster) -> None:
    """Runs after the tests above (module order): their workers, refusals and failed starts all logged."""
    passwords = [*secure_kafka.passwords().values(), "canary-wrong-password-5e1"]
    assert all(p.startswith("canary") for p in passwords)
    logs = [*text_files(stack.settings.state_dir / "logs"), *text_files(secure_kafka.broker.log_dir)]
    assert len(logs) >= 3
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [p for p in passwords if p in text]
        assert not leaked, f"{path} holds a password"
    prefixes = (f"{stack.settings.namespace}.", f"keel-{stack.settings.namespace}-")
    blobs = await asyncio.wait_for(every_record(secure_kafka.client(), prefixes), 120)
    for password in passwords:
        assert not any(password.encode() in blob for blob in blobs)
    await read_refused(secure_kafka.client(secure_kafka.principal("stranger")), stack.topic("support.tickets"))
