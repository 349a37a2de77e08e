"""Client mode in the worker: a new id is read once, off the event loop; an id the registry lacks is
asked for once (then a dead letter each time, no more requests); while the registry is unreachable the
event waits, backing off, instead of becoming a dead letter."""

from __future__ import annotations

from fakes import FakeClock

from streams.apps.registry.lookup import resolve_schema_id
from streams.core.catalogue import Catalogue, CatalogueSchema
from streams.core.errors import SchemaRegistryUnavailable


def framed(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + b"body"


class Registry:
    def __init__(self, catalogue: Catalogue, *, down_for: int = 0) -> None:
        self.asked: list[int] = []
        self.down_for = down_for
        self.known = {50_001: catalogue.by_subject("keel.request-value")}

    def __call__(self, schema_id: int) -> CatalogueSchema | None:
        self.asked.append(schema_id)
        if self.down_for:
            self.down_for -= 1
            raise SchemaRegistryUnavailable("cannot reach the Schema Registry at http://registry")
        return self.known.get(schema_id)


async def test_ids_are_read_once_and_misses_are_remembered(catalogue: Catalogue) -> None:
    registry = Registry(catalogue)
    registered = catalogue.with_registry_ids({}, registry)
    clock = FakeClock()
    for _ in range(3):
        await resolve_schema_id(registered, framed(50_001), clock)
        await resolve_schema_id(registered, framed(7), clock)
    assert registry.asked == [50_001, 7]
    assert registered.by_id(50_001) is not None and registered.by_id(7) is None
    assert registry.asked == [50_001, 7] and clock.sleeps == []


async def test_an_unreachable_registry_makes_the_event_wait(catalogue: Catalogue) -> None:
    registry = Registry(catalogue, down_for=3)
    registered = catalogue.with_registry_ids({}, registry)
    clock = FakeClock()
    await resolve_schema_id(registered, framed(50_001), clock)
    assert clock.sleeps == [1.0, 2.0, 4.0] and registered.knows(50_001)


async def test_embedded_and_unframed_values_ask_nothing(catalogue: Catalogue) -> None:
    clock = FakeClock()
    await resolve_schema_id(catalogue, framed(99), clock)
    registry = Registry(catalogue)
    await resolve_schema_id(catalogue.with_registry_ids({}, registry), b"plain", clock)
    assert registry.asked == [] and clock.sleeps == []
