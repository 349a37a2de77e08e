"""Keel's catalogue over the Schema Registry REST API, driven by confluent-kafka's own client and
deserializer (and by raw HTTP for the shapes, content type and error bodies)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from registry_endpoint import catalogue_store, serving

from streams.agent.definition import Agent
from streams.core.catalogue import Catalogue
from streams.core.domain import RequestEvent
from streams.core.settings import Settings
from streams.pipeline.decode import encode_request

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SETTINGS = Settings(namespace="ns")


@pytest.fixture(scope="module")
def base_url(catalogue: Catalogue, agents: dict[str, Agent]) -> Iterator[str]:
    with serving(catalogue_store(catalogue, list(agents.values()), SETTINGS)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": base_url, "max.retries": 0})


def get(base_url: str, path: str) -> httpx.Response:
    response = httpx.get(base_url + path)
    assert response.headers["content-type"] == CONTENT_TYPE
    return response


def test_topic_subjects_and_the_catalogues_own_are_listed(client: SchemaRegistryClient) -> None:
    subjects = client.get_subjects()
    for topic in ("support_triage.results", "support_triage.dlq", "support_triage.review", "support.tickets",
                  "invoice_extraction.results", "keel.audit", "keel.usage", "keel.alerts", "keel.review.decisions",
                  "keel.budget.requests", "keel.budget.decisions"):  # fmt: skip
        assert f"ns.{topic}-value" in subjects
    assert {"keel.dlq-value", "support_triage.output", "keel.request-value"} <= set(subjects)


def test_a_results_subject_is_the_agents_result_schema(
    client: SchemaRegistryClient, catalogue: Catalogue, agents: dict[str, Agent]
) -> None:
    agent = agents["support_triage"]
    latest = client.get_latest_version("ns.support_triage.results-value")
    assert (latest.schema_id, latest.version) == (agent.result_schema.id, 1)
    assert orjson.loads(latest.schema.schema_str) == agent.result_schema.raw
    assert client.get_schema(agent.result_schema.id).schema_str == latest.schema.schema_str


def test_old_schemas_are_earlier_versions_of_the_topics_subject(client: SchemaRegistryClient) -> None:
    assert client.get_versions("ns.support_triage.dlq-value") == [1, 2]
    assert client.get_version("ns.support_triage.dlq-value", 1).schema_id == 2
    assert client.get_version("ns.support_triage.dlq-value", 2).schema_id == 14
    assert client.get_latest_version("ns.keel.usage-value").schema_id == 17
    pairs = {(v.subject, v.version) for v in client.get_schema_versions(14)}
    assert {("ns.support_triage.dlq-value", 2), ("ns.invoice_extraction.dlq-value", 2), ("keel.dlq-value", 2)} <= pairs


def test_lookup_finds_the_version_that_holds_a_schema(client: SchemaRegistryClient, catalogue: Catalogue) -> None:
    audit = catalogue.by_id(3)
    assert audit is not None
    found = client.lookup_schema("ns.keel.audit-value", Schema(orjson.dumps(audit.raw).decode(), "AVRO"))
    assert (found.schema_id, found.version, found.subject) == (3, 1, "ns.keel.audit-value")
    with pytest.raises(SchemaRegistryError) as caught:
        client.lookup_schema("ns.keel.usage-value", Schema(orjson.dumps(audit.raw).decode(), "AVRO"))
    assert (caught.value.http_status_code, caught.value.error_code) == (404, 40403)


def test_the_deserializer_decodes_a_keel_value_with_the_schema_it_fetches(
    base_url: str, catalogue: Catalogue, make_event: Callable[..., RequestEvent]
) -> None:
    event = make_event()
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": base_url}))
    decoded = deserialize(
        encode_request(catalogue, event), SerializationContext("ns.support.tickets", MessageField.VALUE)
    )
    assert isinstance(decoded, dict)
    assert (decoded["event_id"], decoded["tenant"], orjson.loads(decoded["payload"])) == (
        event.event_id,
        event.tenant,
        event.payload,
    )


def test_error_bodies_are_the_registrys(base_url: str) -> None:
    cases = {
        "/schemas/ids/999": (404, 40403),
        "/subjects/nope-value/versions": (404, 40401),
        "/subjects/ns.keel.audit-value/versions/7": (404, 40402),
        "/subjects/ns.keel.audit-value/versions/zero": (422, 42202),
        "/subjects/ns.keel.audit-value/versions/0": (422, 42202),
        "/no/such/route": (404, 404),
    }
    for path, (status, code) in cases.items():
        response = get(base_url, path)
        assert response.status_code == status, path
        body = response.json()
        assert body["error_code"] == code and isinstance(body["message"], str), path


def test_shapes_on_the_wire(base_url: str) -> None:
    assert set(get(base_url, "/schemas/ids/1?subject=ns.support.tickets-value&format=x").json()) == {"schema"}
    version = get(base_url, "/subjects/ns.keel.audit-value/versions/latest").json()
    assert set(version) == {"subject", "version", "id", "schema"} and version["id"] == 12
    assert get(base_url, "/subjects/ns.keel.audit-value/versions").json() == [1, 2]
    assert get(base_url, "/schemas/ids/12/schema").json()["type"] == "record"
    assert get(base_url, "/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert get(base_url, "/mode").json() == {"mode": "READONLY"}


def test_read_only_refuses_to_register(client: SchemaRegistryClient) -> None:
    with pytest.raises(SchemaRegistryError) as caught:
        client.register_schema("ns.keel.audit-value", Schema('{"type": "string"}', "AVRO"))
    assert (caught.value.http_status_code, caught.value.error_code) == (422, 42205)


def test_bad_requests_are_refused_as_invalid_schemas(base_url: str) -> None:
    for body in (b"{}", b'{"schema": "{not json"}', b'{"schema": "{\\"type\\": \\"nope\\"}"}',
                 b'{"schema": "\\"string\\"", "schemaType": "PROTOBUF"}'):  # fmt: skip
        response = httpx.post(base_url + "/subjects/ns.keel.audit-value", content=body)
        assert (response.status_code, response.json()["error_code"]) == (422, 42201), body
    response = httpx.post(base_url + "/subjects/ns.keel.audit-value", content=b"not json")
    assert response.status_code == 400 and response.headers["content-type"] == CONTENT_TYPE


def test_compatibility_of_the_served_schemas(client: SchemaRegistryClient, catalogue: Catalogue) -> None:
    latest = catalogue.by_subject("keel.dlq-value")
    assert client.test_compatibility("ns.support_triage.dlq-value", Schema(orjson.dumps(latest.raw).decode(), "AVRO"))
    assert not client.test_compatibility("ns.support_triage.dlq-value", Schema('"string"', "AVRO"))
