"""Create Keel's topics explicitly (the broker's auto-create is off)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

from streams.contracts.topics import TopicSpec
from streams.core.errors import KeelError
from streams.core.kafka_client import ClientConfig

log = logging.getLogger(__name__)


class TopicSetupError(KeelError):
    reason = "topic_setup_failed"
    retriable = True


async def ensure_topics(kafka: ClientConfig, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Topics that exist must have
    the planned partition count: an event's store entry and retry tier records use its input
    partition's number."""
    admin = AIOKafkaAdminClient(**kafka.kwargs(), request_timeout_ms=15_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        await _check_partitions(admin, [spec for spec in specs if spec.name in existing])
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            new = [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs) for s in missing]
            response = await admin.create_topics(new)
            _raise_for_errors(response)
            await _wait_for_leaders(admin, [spec.name for spec in missing])
        return [spec.name for spec in missing]
    except KafkaError as exc:
        raise TopicSetupError(f"cannot create topics on {kafka.describe()}: {exc!r}") from exc
    finally:
        await admin.close()


async def _check_partitions(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    if not specs:
        return
    counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([s.name for s in specs])}
    wrong = [f"{s.name} has {counts[s.name]}" for s in specs if counts.get(s.name, s.partitions) != s.partitions]
    if wrong:
        raise TopicSetupError(
            f"topics must have {specs[0].partitions} partitions (KEEL_PARTITIONS), but {'; '.join(wrong)}"
        )


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], *, timeout_s: float = 30) -> None:
    """Return once every partition of the new topics has a leader, so the first produce does not bounce."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(not t["error_code"] and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
               for t in described):  # fmt: skip
            return
        if loop.time() > deadline:
            raise TopicSetupError(f"topics {', '.join(names)} have no partition leaders after {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


def _raise_for_errors(response: object) -> None:
    for name, code, message in getattr(response, "topic_errors", []) or []:
        if code in (TopicAuthorizationFailedError.errno, ClusterAuthorizationFailedError.errno):
            raise TopicSetupError(
                f"this principal may not create topic {name} (no CREATE ACL): run `keel topics` as the operator "
                "principal first (`keel acl plan`)"
            )
        if code and code != TopicAlreadyExistsError.errno:
            raise TopicSetupError(f"creating topic {name} failed with error {code}: {message}")
    log.debug("topics created")


async def partitions_of(kafka: ClientConfig, topic: str) -> list[int]:
    """The partitions of a topic someone else owns (empty: it does not exist, or it may not be described)."""
    admin = AIOKafkaAdminClient(**kafka.kwargs(), request_timeout_ms=15_000)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"]:
        return []
    return sorted(p["partition"] for p in described["partitions"])
