"""Client mode on the real broker, against the write-mode stand-in registry (no registry server can run
here; docs/topics.md says what that covers): the worker registers what it writes, its records carry the
registry's ids, a confluent-kafka consumer decodes them through the registry, and a worker whose output
schema is not backward compatible with the subject's latest version refuses to start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from harness import Stack, run_through
from pydantic import SecretStr
from registry_endpoint import STAND_IN_FIRST_ID, read_all, serving, stand_in_store

from streams.apps.registry.client_mode import load_schemas
from streams.apps.registry.store import SchemaStore
from streams.cli.publish import load_samples, take
from streams.core import wire
from streams.core.settings import REPO_ROOT
from tests.keel_command import run_keel

CANARY = "canary-registry-pw-51c2"


@pytest.fixture
def store() -> SchemaStore:
    return stand_in_store()


@pytest.fixture
def registry_url(store: SchemaStore) -> Iterator[str]:
    with serving(store) as url:
        yield url


async def test_the_worker_writes_the_registrys_ids(
    stack: Stack, store: SchemaStore, registry_url: str, samples_dir: Path
) -> None:
    stack.worker_env |= {"KEEL_SCHEMA_REGISTRY_URL": registry_url, "KEEL_SCHEMA_REGISTRY_USER": "keel",
                         "KEEL_SCHEMA_REGISTRY_PASSWORD": CANARY}  # fmt: skip
    registered, _ = load_schemas(stack.settings.model_copy(update={"schema_registry_url": SecretStr(registry_url)}))
    stack.catalogue = registered  # the publisher's and the watcher's ids are the registry's too
    tickets = take(load_samples(samples_dir / "support_triage.jsonl"), 3)
    with stack.running_worker():
        ids, tally = await run_through(stack, events={"support.tickets": tickets})
        await run_through(stack, raw=[(b"k", b"\x00\x00\x00\x00\x0e" + b"x")])  # id 14: a catalogue id, unknown here
    assert tally.summary(ids)["results"] == 3
    log = (stack.settings.state_dir / "logs" / f"worker-{stack.settings.namespace}.log").read_text()
    assert CANARY not in log
    results, dlq = stack.topic("support_triage.results"), stack.topic("support_triage.dlq")
    assert f"{results}-value" in store.subjects()
    messages = read_all(stack.settings.bootstrap_servers, [results, dlq, stack.topic("keel.audit")], 3 + 1 + 4)
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))
    topics = set()
    for message in messages:
        raw = message.value()
        assert wire.read_header(raw) >= STAND_IN_FIRST_ID, message.topic()
        decoded = deserialize(raw, SerializationContext(message.topic(), MessageField.VALUE))
        assert decoded == wire.decode(registered, raw), message.topic()
        topics.add(message.topic())
        if message.topic() == dlq:
            assert (decoded["stage"], decoded["reason"]) == ("decode", "unknown_schema_id")
    assert topics == {results, dlq, stack.topic("keel.audit")}


def test_an_incompatible_output_schema_stops_the_worker(store: SchemaStore, registry_url: str, tmp_path: Path) -> None:
    from streams.core.catalogue import load_catalogue

    result = next(
        e for e in load_catalogue(REPO_ROOT / "schemas").entries() if e.output == "agents/support_triage.avsc"
    )
    older = dict(result.raw, fields=[f for f in result.raw["fields"] if f["name"] != "business_key"])
    store.register("ns1.support_triage.results-value", {"schema": orjson.dumps(older).decode()})
    env = {**os.environ, "KEEL_NAMESPACE": "ns1", "KEEL_BOOTSTRAP_SERVERS": "127.0.0.1:1",
           "KEEL_STATE_DIR": str(tmp_path), "KEEL_SCHEMA_REGISTRY_URL": registry_url,
           "KEEL_SCHEMA_REGISTRY_USER": "keel", "KEEL_SCHEMA_REGISTRY_PASSWORD": CANARY}  # fmt: skip
    done = run_keel("worker", env=env)
    assert done.returncode == 2, done.stderr
    assert "agent support_triage's result schema" in done.stderr
    assert (
        "not backward compatible with the latest version (id 10001) of subject ns1.support_triage.results-value"
        in done.stderr
    )
    assert "Traceback" not in done.stderr and CANARY not in done.stderr
