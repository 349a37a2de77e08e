"""The write-mode stand-in: registration gives new ids, the same schema the same id, and registering or
testing an incompatible schema is refused, by the Avro resolution rules (backward compatibility)."""

from __future__ import annotations

import io
from itertools import pairwise
from typing import Any

import fastavro
import orjson
import pytest
from fastavro.read import SchemaResolutionError

from streams.apps.registry.compat import backward_problems
from streams.apps.registry.store import RegistryError, SchemaStore
from streams.core.catalogue import Catalogue


def record(*fields: dict[str, Any], name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "t", "fields": list(fields)}


def body(schema: Any) -> dict[str, Any]:
    return {"schema": orjson.dumps(schema).decode(), "schemaType": "AVRO"}


OLD = record({"name": "a", "type": "string"}, {"name": "n", "type": "int"})


@pytest.mark.parametrize(
    ("new", "compatible"),
    [
        (OLD, True),
        (record({"name": "a", "type": "string"}), True),  # a dropped field is skipped
        (record({"name": "a", "type": "string"}, {"name": "n", "type": "long"}), True),  # int promotes
        (record({"name": "a", "type": "string"}, {"name": "n", "type": ["null", "int"]}), True),
        (record({"name": "a", "type": "string"}, {"name": "n", "type": "int"}, {"name": "x", "type": "int"}), False),
        (record(*OLD["fields"], {"name": "x", "type": "int", "default": 0}), True),
        (record({"name": "a", "type": "int"}, {"name": "n", "type": "int"}), False),
        (record({"name": "a", "type": "string"}, {"name": "n", "type": "int"}, name="Other"), False),
        ("string", False),
    ],
)
def test_backward_compatibility_follows_avro_resolution(new: Any, compatible: bool) -> None:
    assert (not backward_problems(new, OLD)) is compatible
    written = io.BytesIO()
    fastavro.schemaless_writer(written, fastavro.parse_schema(OLD), {"a": "s", "n": 3})
    written.seek(0)
    try:  # fastavro's own resolution of real data agrees
        fastavro.schemaless_reader(written, fastavro.parse_schema(OLD), fastavro.parse_schema(new))
    except SchemaResolutionError:
        assert not compatible
    else:
        assert compatible


def test_enums_unions_and_nesting() -> None:
    colour = {"type": "enum", "name": "C", "symbols": ["RED", "GREEN"]}
    fewer = {"type": "enum", "name": "C", "symbols": ["RED"]}
    assert backward_problems(record({"name": "c", "type": fewer}), record({"name": "c", "type": colour}))
    assert not backward_problems(
        record({"name": "c", "type": dict(fewer, default="RED")}), record({"name": "c", "type": colour})
    )
    wider = record({"name": "u", "type": ["null", "string", "int"]})
    narrower = record({"name": "u", "type": ["null", "string"]})
    assert not backward_problems(wider, narrower)
    assert backward_problems(narrower, wider)  # an old int has nowhere to go
    inner_old = record(
        {"name": "i", "type": {"type": "array", "items": record({"name": "v", "type": "int"}, name="I")}}
    )
    inner_new = record(
        {"name": "i", "type": {"type": "array", "items": record({"name": "w", "type": "int"}, name="I")}}
    )
    assert backward_problems(inner_new, inner_old) == ["i[].w: a new field without a default (the old schema has no w)"]


def test_every_catalogue_schema_reads_its_predecessors_but_the_review_item(catalogue: Catalogue) -> None:
    """review_v2 (id 10) added fields without defaults: a registry at BACKWARD would refuse it over id 5.
    Keel reads both by id; client mode registers only the latest of each subject, so it is never asked."""
    by_subject: dict[str, list[Any]] = {}
    for entry in catalogue.entries():
        by_subject.setdefault(entry.subject, []).append(entry.raw)
    breaking = {
        subject
        for subject, versions in by_subject.items()
        for old, new in pairwise(versions)
        if backward_problems(new, old)
    }
    assert breaking == {"keel.review-value"}


def test_registering_gives_ids_and_versions() -> None:
    store = SchemaStore(writable=True, first_id=500)
    assert store.register("a-value", body(OLD)) == 500
    assert store.register("a-value", body(OLD)) == 500  # idempotent
    assert store.register("b-value", body(OLD)) == 500  # the same schema: the same id under any subject
    newer = record(*OLD["fields"], {"name": "x", "type": "int", "default": 0})
    assert store.register("a-value", body(newer)) == 501
    assert store.versions("a-value") == [1, 2]
    assert store.version("a-value", "latest")[1].id == 501
    assert store.lookup("a-value", body(OLD))[0] == 1


def test_registering_an_incompatible_schema_is_refused() -> None:
    store = SchemaStore(writable=True)
    store.register("a-value", body(OLD))
    breaking = record({"name": "a", "type": "string"}, {"name": "z", "type": "int"})
    assert store.compatibility("a-value", "latest", body(breaking))
    assert store.compatibility("new-value", "latest", body(breaking)) == []  # nothing to be compatible with
    with pytest.raises(RegistryError) as caught:
        store.register("a-value", body(breaking))
    assert (caught.value.status, caught.value.error_code) == (409, 409)
    assert "z: a new field without a default" in caught.value.message
    with pytest.raises(RegistryError) as missing:
        store.compatibility("new-value", "1", body(breaking))
    assert missing.value.error_code == 40401
