"""The KEEL_KAFKA_* settings: validation that names settings (never values), secrets from files, and
the one builder of client kwargs (aiokafka, confluent-kafka)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from streams.core.kafka_client import build_client_config, plaintext
from streams.core.kafka_security import KafkaSecurityError, KafkaSecuritySettings, security_problems
from streams.core.settings import Settings

CANARY = "canary-Pa55w0rd-7f3e"


def scram(**fields: Any) -> KafkaSecuritySettings:
    base: dict[str, Any] = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "keel-worker",
        "kafka_sasl_password": CANARY,
    }
    return KafkaSecuritySettings(**(base | fields))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_settings_read_the_block_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KEEL_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KEEL_KAFKA_SASL_USERNAME", "keel")
    monkeypatch.setenv("KEEL_KAFKA_SASL_PASSWORD", CANARY)
    settings = Settings()
    assert settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert settings.kafka_ssl_check_hostname is True
    assert CANARY not in repr(settings) and CANARY not in str(settings.model_dump())


def test_plaintext_is_the_default_and_needs_nothing() -> None:
    config = build_client_config(KafkaSecuritySettings(), bootstrap_servers="127.0.0.1:9092")
    assert config.kwargs() == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}
    assert config.confluent() == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "PLAINTEXT"}
    assert plaintext("h:1").kwargs() == {"bootstrap_servers": "h:1", "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kafka_sasl_mechanism": None}, "KEEL_KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_username": None}, "KEEL_KAFKA_SASL_USERNAME"),
        ({"kafka_sasl_password": None}, "KEEL_KAFKA_SASL_PASSWORD or KEEL_KAFKA_SASL_PASSWORD_FILE"),
        ({"kafka_sasl_password_file": Path("/p")}, "KEEL_KAFKA_SASL_PASSWORD or KEEL_KAFKA_SASL_PASSWORD_FILE, not"),
        ({"kafka_security_protocol": "SSL"}, "KEEL_KAFKA_SASL_MECHANISM is set"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_ca_file": Path("/ca")}, "KEEL_KAFKA_SSL_CA_FILE"),
        ({"kafka_ssl_cert_file": Path("/c")}, "both KEEL_KAFKA_SSL_CERT_FILE and KEEL_KAFKA_SSL_KEY_FILE"),
        ({"kafka_sasl_mechanism": "OAUTHBEARER"}, "OAUTHBEARER needs KEEL_KAFKA_OAUTH_TOKEN_URL"),
    ],
)
def test_settings_that_do_not_fit_name_the_setting_and_never_the_secret(fields: dict[str, Any], named: str) -> None:
    settings = scram(**fields)
    assert any(named in problem for problem in security_problems(settings)), security_problems(settings)
    with pytest.raises(KafkaSecurityError) as raised:
        build_client_config(settings, bootstrap_servers="b:1")
    assert CANARY not in str(raised.value) and raised.value.reason == "kafka_security_invalid"


def test_scram_kwargs_carry_the_password_and_the_repr_does_not(ca: trustme.CA, tmp_path: Path) -> None:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = build_client_config(scram(kafka_ssl_ca_file=tmp_path / "ca.pem"), bootstrap_servers="b:1,c:2")
    kwargs = config.kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "keel-worker" and kwargs["sasl_plain_password"] == CANARY
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert config.confluent()["sasl.password"] == CANARY
    assert config.confluent()["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert config.confluent()["ssl.endpoint.identification.algorithm"] == "https"
    assert CANARY not in repr(config) and CANARY not in config.describe()
    assert repr(config) == "ClientConfig(b:1,c:2, SASL_SSL, SCRAM-SHA-512 as keel-worker)"


def test_a_password_file_is_read_without_its_newline(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(CANARY + "\n")
    config = build_client_config(
        scram(kafka_sasl_password=None, kafka_sasl_password_file=tmp_path / "pw"), bootstrap_servers="b:1"
    )
    assert config.kwargs()["sasl_plain_password"] == CANARY


def test_an_unreadable_file_is_named_by_its_setting(tmp_path: Path) -> None:
    settings = scram(kafka_sasl_password=None, kafka_sasl_password_file=tmp_path / "missing")
    with pytest.raises(KafkaSecurityError, match="KEEL_KAFKA_SASL_PASSWORD_FILE"):
        build_client_config(settings, bootstrap_servers="b:1")
    (tmp_path / "not-pem").write_text("no certificate here")
    with pytest.raises(KafkaSecurityError, match="KEEL_KAFKA_SSL_CA_FILE"):
        build_client_config(scram(kafka_ssl_ca_file=tmp_path / "not-pem"), bootstrap_servers="b:1")


def test_mutual_tls_loads_the_client_certificate(ca: trustme.CA, tmp_path: Path) -> None:
    leaf = ca.issue_cert("keel-client")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    settings = KafkaSecuritySettings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=tmp_path / "ca.pem",
        kafka_ssl_cert_file=tmp_path / "cert.pem",
        kafka_ssl_key_file=tmp_path / "key.pem",
        kafka_ssl_check_hostname=False,
    )
    config = build_client_config(settings, bootstrap_servers="b:1")
    assert config.kwargs()["security_protocol"] == "SSL" and not config.kwargs()["ssl_context"].check_hostname
    assert "sasl_mechanism" not in config.kwargs()
    assert config.confluent()["ssl.certificate.location"] == str(tmp_path / "cert.pem")
    assert config.confluent()["ssl.endpoint.identification.algorithm"] == "none"
    mismatched = settings.model_copy(update={"kafka_ssl_key_file": tmp_path / "ca.pem"})
    with pytest.raises(KafkaSecurityError, match="KEEL_KAFKA_SSL_CERT_FILE and KEEL_KAFKA_SSL_KEY_FILE"):
        build_client_config(mismatched, bootstrap_servers="b:1")


def test_oauthbearer_takes_the_callers_token_provider() -> None:
    settings = scram(
        kafka_sasl_mechanism="OAUTHBEARER",
        kafka_sasl_password=None,
        kafka_oauth_token_url="https://idp.example/token",
        kafka_oauth_client_id="keel",
        kafka_oauth_client_secret=CANARY,
        kafka_oauth_scope="kafka",
    )
    provider = object()
    config = build_client_config(settings, bootstrap_servers="b:1", token_provider=provider)
    assert config.kwargs()["sasl_oauth_token_provider"] is provider
    assert "sasl_plain_password" not in config.kwargs()
    assert config.confluent()["sasl.oauthbearer.client.secret"] == CANARY
    assert config.confluent()["sasl.oauthbearer.scope"] == "kafka"
    assert CANARY not in repr(config)
    with pytest.raises(KafkaSecurityError, match="token provider"):
        build_client_config(settings, bootstrap_servers="b:1")
