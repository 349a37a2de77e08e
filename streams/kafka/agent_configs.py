"""Reading and following ``keel.agent-configs`` (streams/contracts/agent_configs.py), and writing to it."""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.contracts.agent_configs import ConfigLog, Entry, decode_config
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import AGENT_CONFIGS
from streams.core.catalogue import Catalogue
from streams.core.errors import AgentConfigRefused, DecodeError
from streams.core.kafka_client import ClientConfig
from streams.core.settings import Settings
from streams.kafka.consumers import Following, read_to_end, seek_to_beginnings, until_read
from streams.kafka.producer import RecordProducer
from streams.kafka.skipped import SkippedRecords

READER = "agent-configs"


async def read_config_log(
    kafka: ClientConfig, catalogue: Catalogue, settings: Settings, skipped: SkippedRecords | None = None
) -> ConfigLog:
    """Everything the topic holds now; records that are not ours are passed over (and counted)."""
    log, skipped = ConfigLog(), skipped or SkippedRecords()
    async for message in read_to_end(kafka, [TopicPartition(settings.topic(AGENT_CONFIGS), 0)]):
        try:
            log.apply(decode_config(catalogue, message.key, message.value))
        except (DecodeError, AgentConfigRefused) as exc:
            skipped.skip(READER, message, exc)
    return log


async def publish_configs(kafka: ClientConfig, records: list[OutRecord]) -> None:
    async with RecordProducer(kafka) as producer:
        await producer.send_all(records)


class ConfigFeed(Following):
    """Follows the topic from its beginning: ``take`` gets every entry that is well-formed, in order
    (it may raise ``AgentConfigRefused``: the entry is passed over and counted)."""

    def __init__(
        self,
        kafka: ClientConfig,
        catalogue: Catalogue,
        settings: Settings,
        take: Callable[[Entry], None],
        skipped: SkippedRecords,
    ) -> None:
        self._kafka, self._catalogue, self._take, self._skipped = kafka, catalogue, take, skipped
        self._tp = TopicPartition(settings.topic(AGENT_CONFIGS), 0)
        self._consumer: AIOKafkaConsumer | None = None  # made in ``start``: aiokafka wants a running loop

    async def start(self) -> None:
        """Read to the end the topic has now, then follow it in the background."""
        consumer = AIOKafkaConsumer(**self._kafka.kwargs(), enable_auto_commit=False, fetch_max_wait_ms=100)
        self._consumer = consumer
        await consumer.start()
        consumer.assign([self._tp])
        await seek_to_beginnings(consumer, [self._tp])
        end = (await until_read(lambda: consumer.end_offsets([self._tp]), what="the agent configs' end"))[self._tp]
        while await until_read(lambda: consumer.position(self._tp), what="the agent configs' position") < end:
            await self._read_once()
        self._start_following("agent-configs")

    async def _read_once(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        batch = await until_read(lambda: consumer.getmany(timeout_ms=500), what="reading the agent configs")
        for message in batch.get(self._tp, ()):
            try:
                self._take(decode_config(self._catalogue, message.key, message.value))
            except (DecodeError, AgentConfigRefused) as exc:
                self._skipped.skip(READER, message, exc)
