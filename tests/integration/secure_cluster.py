"""The secured local broker for integration tests: SASL_SSL with SCRAM-SHA-512 users for every Keel
principal of one namespace (created when the storage is formatted), canary passwords, and the
StandardAuthorizer denying everything no ACL allows (connectors/local/kafka_secure.py)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import TopicAuthorizationFailedError

from connectors.local.kafka_local import LocalKafka
from connectors.local.kafka_secure import ADMIN, OAuthValidation, SecureFiles, write_private
from streams.agent.definition import load_agents
from streams.contracts.acls import acl_plan, principal_name
from streams.core.catalogue import load_catalogue
from streams.core.kafka_client import ClientConfig
from streams.core.kafka_security import KafkaSecuritySettings
from streams.core.settings import REPO_ROOT, Settings

CANARY = "canary"  # every password starts with it: a test greps logs and records for the passwords


@dataclass(frozen=True)
class SecureCluster:
    broker: LocalKafka
    namespace: str

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def files(self) -> SecureFiles:
        return self.broker.secure_files

    def principal(self, role: str) -> str:
        return principal_name(Settings(namespace=self.namespace), role)

    def security(self, user: str = ADMIN) -> KafkaSecuritySettings:
        return self.files.security(user)

    def client(self, user: str = ADMIN) -> ClientConfig:
        return self.files.client(self.bootstrap, user)

    def environment(self, user: str) -> dict[str, str]:
        return self.files.environment(user)

    def passwords(self) -> dict[str, str]:
        return {user: self.files.password_file(user).read_text() for user in self.files.users()}


def secure_broker(port: int, *, namespace: str | None = None, oauth: OAuthValidation | None = None) -> SecureCluster:
    """The broker (not started), with users for the shipped agents' principals in a fresh namespace (or
    ``namespace``) and one ``stranger`` that no ACL names; ``oauth``: it also takes OAUTHBEARER tokens."""
    namespace = namespace or f"sec-{uuid.uuid4().hex[:6]}"
    broker = LocalKafka(port=port, state_dir=REPO_ROOT / ".keel" / f"test-kafka-secure-{port}", secure=True,
                        users=tuple(planned_users(namespace)), oauth=oauth)  # fmt: skip
    return SecureCluster(broker, namespace)


def planned_users(namespace: str) -> list[str]:
    """The principals of the ACL plan for the shipped agents in ``namespace``, and ``stranger``."""
    settings = Settings(namespace=namespace)
    agents = load_agents(settings.agents_dir, load_catalogue(settings.schemas_dir))
    return [p.name for p in acl_plan(agents, settings)] + [principal_name(settings, "stranger")]


def write_canary_passwords(files: SecureFiles, users: list[str]) -> None:
    """Distinctive passwords, written before the broker formats its storage (which keeps them)."""
    files.secrets_dir.mkdir(parents=True, exist_ok=True)
    for user in [ADMIN, *users]:
        write_private(files.password_file(user), f"{CANARY}-{secrets.token_hex(12)}".encode())


def text_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and path.suffix in {".log", ".txt", ""}]


def subscriber(kafka: ClientConfig, topic: str) -> AIOKafkaConsumer:
    """No group: it reads every partition from the start (a group would need an ACL of its own)."""
    return AIOKafkaConsumer(topic, **kafka.kwargs(), enable_auto_commit=False, auto_offset_reset="earliest",
                            request_timeout_ms=10_000)  # fmt: skip


async def read_refused(kafka: ClientConfig, topic: str) -> None:
    """Refused either way: without DESCRIBE when the consumer looks the topic up, without READ at the
    first fetch."""
    consumer = subscriber(kafka, topic)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            async with asyncio.timeout(30):
                await consumer.start()
                for _ in range(5):
                    await consumer.getmany(timeout_ms=2000)
    finally:
        await consumer.stop()
