"""Reading partitions from their beginning to their end as of now: compacted state and records so far."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_to_end(bootstrap_servers: str, tps: list[TopicPartition]) -> AsyncIterator[Any]:
    """Every record of ``tps``, in order per partition, up to each partition's end when the read starts."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp, offset in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, offset)  # explicit and immediate: seek_to_beginning() can race the fetcher
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for messages in (await consumer.getmany(*tps, timeout_ms=1000)).values():
                for message in messages:
                    yield message
    finally:
        await consumer.stop()
