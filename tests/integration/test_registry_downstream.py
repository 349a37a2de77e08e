"""A downstream consumer that uses no Keel code: confluent-kafka's Consumer, AvroDeserializer and
SchemaRegistryClient read ``<agent>.results`` and ``<agent>.dlq`` through Keel's registry endpoint
(`keel registry serve`'s app, on loopback) and get every field, as Keel itself decodes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from harness import Stack, run_through
from registry_endpoint import catalogue_store, read_all, serving

from streams.agent.definition import load_agents
from streams.cli.publish import load_samples, take
from streams.core import wire


@pytest.fixture
def registry_url(stack: Stack) -> Iterator[str]:
    agents = load_agents(stack.settings.agents_dir, stack.catalogue)
    with serving(catalogue_store(stack.catalogue, agents, stack.settings)) as url:
        yield url


async def test_a_confluent_consumer_decodes_results_and_dead_letters(
    stack: Stack, registry_url: str, samples_dir: Path
) -> None:
    tickets = take(load_samples(samples_dir / "support_triage.jsonl"), 4)
    invoices = take(load_samples(samples_dir / "invoice_extraction.jsonl"), 2)
    with stack.running_worker():
        await run_through(stack, events={"support.tickets": tickets, "finance.invoices": invoices})
        await run_through(stack, raw=[(b"k", b"\x00\x00\x00\x03\xe7garbage"), (b"k", b"plain text")])
    topics = {
        stack.topic("support_triage.results"): 4,
        stack.topic("invoice_extraction.results"): 2,
        stack.topic("support_triage.dlq"): 2,
    }
    messages = read_all(stack.settings.bootstrap_servers, list(topics), sum(topics.values()))
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    seen: dict[str, int] = {}
    for message in messages:
        raw = message.value()
        decoded = deserialize(raw, SerializationContext(message.topic(), MessageField.VALUE))
        schema = stack.catalogue.by_id(wire.read_header(raw))
        assert schema is not None
        assert isinstance(decoded, dict)
        assert set(decoded) == {field["name"] for field in schema.raw["fields"]}, message.topic()
        assert decoded == wire.decode(stack.catalogue, raw), message.topic()  # every field, as Keel reads it
        assert decoded["event_id"] == message.key().decode()
        seen[message.topic()] = seen.get(message.topic(), 0) + 1
    assert seen == topics
    dead = [deserialize(m.value(), SerializationContext(m.topic(), MessageField.VALUE)) for m in messages
            if m.topic().endswith(".dlq")]  # fmt: skip
    assert {d["original"]["value"] for d in dead} == {b"\x00\x00\x00\x03\xe7garbage", b"plain text"}
    assert {(d["stage"], d["reason"]) for d in dead} == {
        ("decode", "unknown_schema_id"),
        ("decode", "wrong_magic_byte"),
    }


def test_keel_registry_serve_answers_a_standard_client(tmp_path: Path) -> None:
    """The command itself: `keel registry serve` on its port, in the namespace it is given."""
    import os
    import subprocess
    import sys

    port = int(os.environ.get("KEEL_TEST_REGISTRY_PORT", "29795"))  # the broker's test port moves the same way
    env = {**os.environ, "KEEL_NAMESPACE": "ns2", "KEEL_REGISTRY_WEB_PORT": str(port), "KEEL_STATE_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "streams.cli", "registry", "serve"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        client = SchemaRegistryClient({"url": f"http://127.0.0.1:{port}", "max.retries": 10, "retries.wait.ms": 200})
        assert client.get_latest_version("ns2.support_triage.results-value").schema_id == 102
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert process.returncode in (0, -15), output
    assert f"schema registry API on http://127.0.0.1:{port}/" in output
