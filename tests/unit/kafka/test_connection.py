"""The start-up check (one clear error naming the setting, not a retry loop), the OAuth token provider
and faust's credentials, against loopback servers (no broker: the SASL refusals are in
tests/integration/test_secure_broker.py)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from pydantic import SecretStr

from streams.apps.faust_app import broker_credentials
from streams.core.errors import KafkaAuthRejected, KafkaTlsRejected
from streams.core.kafka_client import build_client_config, plaintext
from streams.core.kafka_security import KafkaSecuritySettings
from streams.core.settings import Settings
from streams.kafka.connection import check_access, client_config
from streams.kafka.oauth import ClientCredentialsTokenProvider

CANARY = "canary-client-secret-91ab"


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """A TLS server on loopback whose certificate names only ``elsewhere.example``; its CA's file."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("elsewhere.example").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
    yield server.sockets[0].getsockname()[1], tmp_path / "ca.pem"
    server.close()


def tls(port: int, **fields: object) -> KafkaSecuritySettings:
    return KafkaSecuritySettings(kafka_security_protocol="SSL", **fields)  # type: ignore[arg-type]


async def test_an_untrusted_certificate_is_one_error_naming_the_ca_setting(tls_server: tuple[int, Path]) -> None:
    port, _ca = tls_server
    config = build_client_config(tls(port), bootstrap_servers=f"127.0.0.1:{port}")
    with pytest.raises(KafkaTlsRejected, match="KEEL_KAFKA_SSL_CA_FILE") as raised:
        await check_access(config, timeout_s=5)
    assert raised.value.reason == "kafka_tls_failed"


async def test_a_certificate_for_another_host_names_hostname_verification(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    config = build_client_config(tls(port, kafka_ssl_ca_file=ca), bootstrap_servers=f"127.0.0.1:{port}")
    with pytest.raises(KafkaTlsRejected, match="KEEL_KAFKA_SSL_CHECK_HOSTNAME"):
        await check_access(config, timeout_s=5)


async def test_a_cluster_that_does_not_answer_is_left_to_the_clients_retries() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert await check_access(plaintext(f"127.0.0.1:{port}"), timeout_s=2) is False


def test_faust_gets_the_same_credentials(tmp_path: Path) -> None:
    assert broker_credentials(plaintext("b:1")) is None
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ssl_only = build_client_config(tls(1, kafka_ssl_ca_file=tmp_path / "ca.pem"), bootstrap_servers="b:1")
    assert isinstance(broker_credentials(ssl_only), SSLCredentials)
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="keel-aggregator",
        kafka_sasl_password=SecretStr(CANARY),
        kafka_ssl_ca_file=tmp_path / "ca.pem",
    )
    credentials = broker_credentials(client_config(settings))
    assert isinstance(credentials, SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.protocol.value == "SASL_SSL"
    assert credentials.password == CANARY and CANARY not in repr(credentials)
    oauth = settings.model_copy(
        update={
            "kafka_sasl_mechanism": "OAUTHBEARER",
            "kafka_oauth_token_url": "https://idp.example/token",
            "kafka_oauth_client_id": "keel",
            "kafka_oauth_client_secret": SecretStr(CANARY),
        }
    )
    credentials = broker_credentials(client_config(oauth))
    assert isinstance(credentials, OAuthCredentials)
    assert isinstance(credentials.oauth_cb, ClientCredentialsTokenProvider)
    assert CANARY not in repr(credentials.oauth_cb)


async def test_the_token_provider_asks_once_and_reuses_the_token() -> None:
    asked: list[httpx.Request] = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json={"access_token": f"token-{len(asked)}", "expires_in": 3600})

    provider = ClientCredentialsTokenProvider(
        token_url="https://idp.example/token", client_id="keel", client_secret=SecretStr(CANARY),
        scope="kafka", transport=httpx.MockTransport(endpoint),
    )  # fmt: skip
    assert [await provider.token(), await provider.token()] == ["token-1", "token-1"]
    assert (
        len(asked) == 1 and b"grant_type=client_credentials" in asked[0].content and b"scope=kafka" in asked[0].content
    )
    assert asked[0].headers["authorization"].startswith("Basic ")


async def test_a_refused_client_secret_names_the_settings_not_the_secret() -> None:
    provider = ClientCredentialsTokenProvider(
        token_url="https://idp.example/token", client_id="keel", client_secret=SecretStr(CANARY), scope=None,
        transport=httpx.MockTransport(lambda _request: httpx.Response(401, json={"error": "invalid_client"})),
    )  # fmt: skip
    with pytest.raises(KafkaAuthRejected, match="KEEL_KAFKA_OAUTH_CLIENT_SECRET") as raised:
        await provider.token()
    assert CANARY not in str(raised.value)
