"""Create Keel's topics explicitly (the broker's auto-create is off)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import KeelError
from streams.topics import TopicSpec

log = logging.getLogger(__name__)


class TopicSetupError(KeelError):
    reason = "topic_setup_failed"
    retriable = True


async def ensure_topics(bootstrap_servers: str, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            new = [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs) for s in missing]
            response = await admin.create_topics(new)
            _raise_for_errors(response)
        return [spec.name for spec in missing]
    except KafkaError as exc:
        raise TopicSetupError(f"cannot create topics on {bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()


def _raise_for_errors(response: object) -> None:
    for name, code, message in getattr(response, "topic_errors", []) or []:
        if code and code != TopicAlreadyExistsError.errno:
            raise TopicSetupError(f"creating topic {name} failed with error {code}: {message}")
    log.debug("topics created")
