"""Client mode in the worker: an id not met before is read from the registry before the event is
processed, in a thread, so that the event loop (heartbeats, other partitions) never waits on the
registry and decoding, pure and synchronous, finds the schema. While the registry cannot be reached the
event waits (in order, like a write that has not gone through) rather than becoming a dead letter."""

from __future__ import annotations

import asyncio
import logging

from streams.core.catalogue import Catalogue
from streams.core.errors import SchemaRegistryUnavailable
from streams.core.ports.clock import Clock
from streams.core.wire import MAGIC

log = logging.getLogger(__name__)
_MAX_WAIT_S = 30.0


async def resolve_schema_id(catalogue: Catalogue, value: bytes, clock: Clock) -> None:
    if not catalogue.from_registry:  # embedded: nothing to look up
        return
    if len(value) < 5 or value[0] != MAGIC:
        return  # not framed: decoding says so
    schema_id = int.from_bytes(value[1:5], "big")
    wait_s = 1.0
    while not catalogue.knows(schema_id):
        try:
            await asyncio.to_thread(catalogue.by_id, schema_id)
        except SchemaRegistryUnavailable as exc:
            log.warning("schema id %d: %s; the event waits %.0f s", schema_id, exc, wait_s)
            await clock.sleep(wait_s)
            wait_s = min(wait_s * 2, _MAX_WAIT_S)
