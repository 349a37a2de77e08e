"""Client mode against the write-mode stand-in, through confluent-kafka's real client over HTTP: every
schema Keel writes is registered under ``<topic>-value``, the registry's ids go in the wire format, any
id is read through the registry, and an incompatible output schema stops the start with a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from registry_endpoint import STAND_IN_FIRST_ID, serving, stand_in_store

from connectors.registry.client import RegistryClient, client_config, registry_url, shown
from streams.apps.registry.client_mode import load_schemas
from streams.apps.registry.serve import catalogue_store
from streams.apps.registry.store import SchemaStore
from streams.apps.registry.web import build_app
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.errors import IncompatibleSchema, SchemaRegistryRefused, SchemaRegistryUnavailable, UnknownSchemaId
from streams.core.settings import Settings
from streams.pipeline.decode import decode_request, encode_request

CANARY = "canary-secret-7f3a"


@pytest.fixture
def store() -> SchemaStore:
    return stand_in_store()


@pytest.fixture
def url(store: SchemaStore) -> Iterator[str]:
    with serving(store) as base_url:
        yield base_url


def settings_for(url: str, **more: Any) -> Settings:
    return Settings(namespace="ns", schema_registry_url=url, **more)


def body(raw: Any) -> dict[str, Any]:
    return {"schema": orjson.dumps(raw).decode()}


def test_without_a_registry_the_catalogue_ids_are_used(catalogue: Catalogue) -> None:
    embedded, agents = load_schemas(Settings(namespace="ns"))
    assert embedded.by_subject("keel.dlq-value").id == 14 and not embedded.from_registry
    assert {a.name: a.result_schema.id for a in agents} == {"support_triage": 102, "invoice_extraction": 112}


def test_every_written_schema_is_registered_and_its_id_used(url: str, store: SchemaStore, make_event: Any) -> None:
    registered, agents = load_schemas(settings_for(url))
    subjects = set(store.subjects())
    for topic in ("support_triage.results", "support_triage.review", "support_triage.dlq", "support.tickets",
                  "invoice_extraction.results", "keel.audit", "keel.usage", "keel.alerts", "keel.review.decisions",
                  "keel.budget.requests", "keel.budget.decisions"):  # fmt: skip
        assert f"ns.{topic}-value" in subjects
    assert not any(".retry." in s or s.endswith(".parked-value") for s in subjects)  # their bytes are the input's
    dlq = registered.by_subject("keel.dlq-value")
    assert dlq.id >= STAND_IN_FIRST_ID
    assert store.version("ns.support_triage.dlq-value", "latest")[1].id == dlq.id
    assert store.version("ns.invoice_extraction.dlq-value", "latest")[1].id == dlq.id  # one schema, one id
    triage = next(a for a in agents if a.name == "support_triage")
    assert triage.result_schema.id == store.version("ns.support_triage.results-value", "latest")[1].id
    event = make_event()
    data = encode_request(registered, event)
    assert wire.read_header(data) == registered.by_subject("keel.request-value").id >= STAND_IN_FIRST_ID
    assert decode_request(registered, data, max_event_bytes=1 << 20).event_id == event.event_id
    decoded = AvroDeserializer(SchemaRegistryClient({"url": url}))(
        data, SerializationContext("ns.support.tickets", MessageField.VALUE)
    )
    assert decoded is not None and decoded["event_id"] == event.event_id


def test_a_second_start_registers_nothing_new(url: str, store: SchemaStore) -> None:
    first, _ = load_schemas(settings_for(url))
    versions = {s: store.versions(s) for s in store.subjects()}
    second, _ = load_schemas(settings_for(url))
    assert {s: store.versions(s) for s in store.subjects()} == versions
    assert second.by_subject("keel.audit-value").id == first.by_subject("keel.audit-value").id


def test_catalogue_ids_mean_nothing_with_a_registry(url: str, catalogue: Catalogue, make_event: Any) -> None:
    registered, _ = load_schemas(settings_for(url))
    with pytest.raises(UnknownSchemaId):
        decode_request(registered, encode_request(catalogue, make_event()), max_event_bytes=1 << 20)


def test_any_id_is_read_through_the_registry(url: str, store: SchemaStore, catalogue: Catalogue) -> None:
    old_dead_letter = catalogue.by_id(2)
    assert old_dead_letter is not None
    old_id = store.register("elsewhere-value", body(old_dead_letter.raw))  # written by an older Keel, say
    foreign_id = store.register("other-value", body({"type": "record", "name": "X", "fields": [{"name": "n", "type": "int"}]}))  # fmt: skip
    registered, _ = load_schemas(settings_for(url))
    read = registered.by_id(old_id)
    assert read is not None and read.subject == "keel.dlq-value"
    own = next(e for e in registered.entries() if e.file == "dead_letter.avsc")
    assert read.parsed is own.parsed  # the catalogue's parsed schema, not a new parse
    assert registered.by_id(old_id) is read  # fetched once
    foreign = registered.by_id(foreign_id)
    assert foreign is not None and foreign.subject == f"registry:{foreign_id}"
    assert wire.decode(registered, wire.encode(foreign, {"n": 5})) == {"n": 5}
    assert registered.by_id(987_654) is None


def test_an_incompatible_output_schema_refuses_to_start(url: str, store: SchemaStore, agents: dict[str, Any]) -> None:
    result = agents["support_triage"].result_schema.raw
    older = dict(result, fields=[f for f in result["fields"] if f["name"] != "tenant"])  # data without a tenant
    older_id = store.register("ns.support_triage.results-value", body(older))
    with pytest.raises(IncompatibleSchema) as refused:
        load_schemas(settings_for(url))
    message = str(refused.value)
    assert "agent support_triage's result schema" in message and "agents/support_triage.avsc" in message
    assert "subject ns.support_triage.results-value" in message and f"(id {older_id})" in message
    assert store.versions("ns.support_triage.results-value") == [1]  # nothing registered after the refusal
    assert not any(s.startswith("ns.keel.") for s in store.subjects())


def test_basic_auth_and_bearer_reach_the_registry_and_never_a_message(store: SchemaStore) -> None:
    seen: list[str | None] = []
    app = build_app(store)

    async def record(request: web.Request, _response: web.StreamResponse) -> None:
        seen.append(request.headers.get("Authorization"))

    app.on_response_prepare.append(record)
    with serving(store, app=app) as base_url:
        load_schemas(settings_for(base_url, schema_registry_user="keel", schema_registry_password=CANARY))
        assert seen and all(h is not None and h.startswith("Basic ") for h in seen)
        seen.clear()
        load_schemas(settings_for(base_url, schema_registry_token=CANARY, schema_registry_logical_cluster="lsrc-1"))
        assert seen and set(seen) == {f"Bearer {CANARY}"}
    settings = settings_for(f"http://keel:{CANARY}@127.0.0.1:9", schema_registry_timeout_s=0.2)
    assert CANARY not in repr(settings) and CANARY not in shown(registry_url(settings))
    with pytest.raises(SchemaRegistryUnavailable) as unreachable:
        RegistryClient(settings).register("s-value", {"type": "string"})
    assert CANARY not in str(unreachable.value)
    both = settings_for("http://127.0.0.1:9", schema_registry_user="u", schema_registry_token=CANARY)
    with pytest.raises(SchemaRegistryRefused) as invalid:
        client_config(both)
    assert CANARY not in str(invalid.value)


def test_a_refusal_names_what_was_refused() -> None:
    store = SchemaStore()  # read-only: registering answers 42205

    with serving(store) as base_url, pytest.raises(SchemaRegistryRefused) as refused:
        load_schemas(settings_for(base_url))
    assert "42205" in str(refused.value) and "refused registering" in str(refused.value)
    served = catalogue_store(Settings(namespace="ns"))
    assert "ns.keel.audit-value" in served.subjects()


def test_wrong_credentials_are_one_clear_error_naming_the_settings() -> None:
    async def unauthorized(_request: web.Request) -> web.Response:
        body = {"error_code": 40101, "message": "Unauthorized"}
        return web.json_response(body, status=401, content_type="application/vnd.schemaregistry.v1+json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", unauthorized)
    with serving(SchemaStore(), app=app) as base_url, pytest.raises(SchemaRegistryRefused) as refused:
        load_schemas(settings_for(base_url, schema_registry_user="keel", schema_registry_password=CANARY))
    message = str(refused.value)
    assert "(401)" in message and "KEEL_SCHEMA_REGISTRY_USER" in message and CANARY not in message
