"""The one builder of Kafka client connection settings: every client Keel creates (aiokafka consumers,
producers and admin clients, faust's app, confluent-kafka's admin client for ACLs, the local broker's
readiness probe) takes its bootstrap servers and security from a ``ClientConfig`` made here.
tests/unit/test_kafka_clients.py fails when a client constructor in the source tree bypasses it.

Pure: stdlib ``ssl`` only. The OAUTHBEARER token provider is an aiokafka object, so the caller passes
it in (streams/kafka/connection.py builds it from the settings).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from streams.core.kafka_security import (
    PASSWORD_MECHANISMS,
    KafkaSecurityError,
    KafkaSecuritySettings,
    check_security,
    read_secret,
)


@dataclass(frozen=True, repr=False, eq=False)
class ClientConfig:
    """Where the cluster is and how to authenticate to it. Its repr names no secret."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    _security: dict[str, Any] = field(default_factory=dict)
    _confluent: dict[str, str] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's ``AIOKafkaConsumer``, ``AIOKafkaProducer`` and
        ``AIOKafkaAdminClient``: ``bootstrap_servers`` and everything security needs."""
        return {"bootstrap_servers": self.bootstrap_servers, "security_protocol": self.security_protocol,
                **self._security}  # fmt: skip

    def confluent(self) -> dict[str, str]:
        """The same connection as librdkafka (confluent-kafka) configuration properties."""
        return {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol,
                **self._confluent}  # fmt: skip

    def __repr__(self) -> str:
        who = f", {self.sasl_mechanism} as {self.sasl_username or 'OAuth client'}" if self.sasl_mechanism else ""
        return f"ClientConfig({self.bootstrap_servers}, {self.security_protocol}{who})"

    def describe(self) -> str:
        """For log lines and error messages: the cluster and the identity, never a secret."""
        return repr(self)[len("ClientConfig(") : -1]


def plaintext(bootstrap_servers: str) -> ClientConfig:
    return ClientConfig(bootstrap_servers)


def build_client_config(
    security: KafkaSecuritySettings, *, bootstrap_servers: str, token_provider: object | None = None
) -> ClientConfig:
    """The client settings for ``security``; raises ``KafkaSecurityError`` naming the setting at fault
    (settings that do not fit together, a file that cannot be read, a certificate that cannot load)."""
    check_security(security)
    aiokafka: dict[str, Any] = {}
    confluent: dict[str, str] = {}
    if security.kafka_uses_tls:
        aiokafka["ssl_context"] = ssl_context(security)
        confluent.update(_confluent_tls(security))
    mechanism = security.kafka_sasl_mechanism if security.kafka_uses_sasl else None
    username = security.kafka_sasl_username if mechanism in PASSWORD_MECHANISMS else None
    if mechanism in PASSWORD_MECHANISMS:
        password = read_secret(security, "kafka_sasl_password")
        assert password is not None  # check_security saw one of the two
        aiokafka.update(sasl_mechanism=mechanism, sasl_plain_username=username,
                        sasl_plain_password=password.get_secret_value())  # fmt: skip
        confluent.update({"sasl.mechanism": str(mechanism), "sasl.username": str(username),
                          "sasl.password": password.get_secret_value()})  # fmt: skip
    elif mechanism == "OAUTHBEARER":
        if token_provider is None:
            raise KafkaSecurityError("OAUTHBEARER needs a token provider (streams/kafka/connection.py builds it)")
        aiokafka.update(sasl_mechanism=mechanism, sasl_oauth_token_provider=token_provider)
        confluent.update(_confluent_oauth(security))
    return ClientConfig(bootstrap_servers, security.kafka_security_protocol, mechanism, username, aiokafka, confluent)


def ssl_context(security: KafkaSecuritySettings) -> ssl.SSLContext:
    ca_file = security.kafka_ssl_ca_file
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaSecurityError(
            f"KEEL_KAFKA_SSL_CA_FILE ({ca_file}) cannot be loaded as PEM certificates: {type(exc).__name__}"
        ) from exc
    context.check_hostname = security.kafka_ssl_check_hostname
    if security.kafka_ssl_cert_file is not None and security.kafka_ssl_key_file is not None:
        key_password = read_secret(security, "kafka_ssl_key_password")
        try:
            context.load_cert_chain(
                security.kafka_ssl_cert_file,
                security.kafka_ssl_key_file,
                password=key_password.get_secret_value() if key_password else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSecurityError(
                "KEEL_KAFKA_SSL_CERT_FILE and KEEL_KAFKA_SSL_KEY_FILE (with KEEL_KAFKA_SSL_KEY_PASSWORD, if set) "
                f"cannot be loaded as a certificate and its key: {type(exc).__name__}"
            ) from exc
    return context


def _confluent_tls(security: KafkaSecuritySettings) -> dict[str, str]:
    properties = {"ssl.endpoint.identification.algorithm": "https" if security.kafka_ssl_check_hostname else "none"}
    if security.kafka_ssl_ca_file is not None:
        properties["ssl.ca.location"] = str(security.kafka_ssl_ca_file)
    if security.kafka_ssl_cert_file is not None and security.kafka_ssl_key_file is not None:
        properties["ssl.certificate.location"] = str(security.kafka_ssl_cert_file)
        properties["ssl.key.location"] = str(security.kafka_ssl_key_file)
        key_password = read_secret(security, "kafka_ssl_key_password")
        if key_password is not None:
            properties["ssl.key.password"] = key_password.get_secret_value()
    return properties


def _confluent_oauth(security: KafkaSecuritySettings) -> dict[str, str]:
    secret = read_secret(security, "kafka_oauth_client_secret")
    assert secret is not None  # check_security saw one of the two
    properties = {
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.token.endpoint.url": str(security.kafka_oauth_token_url),
        "sasl.oauthbearer.client.id": str(security.kafka_oauth_client_id),
        "sasl.oauthbearer.client.secret": secret.get_secret_value(),
    }
    if security.kafka_oauth_scope:
        properties["sasl.oauthbearer.scope"] = security.kafka_oauth_scope
    return properties
