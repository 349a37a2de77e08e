"""How Keel's Kafka clients authenticate: the ``KEEL_KAFKA_*`` settings and their validation.

One block of settings for every client (docs/kafka-estate.md): a security protocol, a SASL mechanism
with its credentials (PLAIN, SCRAM, or OAUTHBEARER through an OAuth client-credentials grant), and TLS
(a CA file, a client certificate and key for mutual TLS, hostname verification on by default).
Secrets are ``SecretStr``, set directly or read from a file; a problem is reported by the name of the
setting, never with its value. ``Settings`` (streams/core/settings.py) inherits these fields; the
clients are built from them in streams/core/kafka_client.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from streams.core.errors import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]
PASSWORD_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurityError(ConfigError):
    """The Kafka security settings do not fit together, or a file they name cannot be read."""

    reason = "kafka_security_invalid"


class KafkaSecuritySettings(BaseModel):
    """The fields; ``Settings`` reads them from ``KEEL_KAFKA_...`` (a plain model here, so the local
    broker's tooling can describe its own admin client with the same fields)."""

    kafka_security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, as the cluster's listener"
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (SASL protocols only)"
    )
    kafka_sasl_username: str | None = Field(default=None, description="The principal's name (PLAIN and SCRAM)")
    kafka_sasl_password: SecretStr | None = Field(default=None, description="Its password")
    kafka_sasl_password_file: Path | None = Field(default=None, description="Or a file holding the password")
    kafka_ssl_ca_file: Path | None = Field(
        default=None, description="PEM certificates that sign the brokers' (default: the system's trust store)"
    )
    kafka_ssl_cert_file: Path | None = Field(default=None, description="mTLS: the client certificate chain (PEM)")
    kafka_ssl_key_file: Path | None = Field(default=None, description="mTLS: its private key (PEM)")
    kafka_ssl_key_password: SecretStr | None = Field(default=None, description="The key's password, if encrypted")
    kafka_ssl_key_password_file: Path | None = Field(default=None, description="Or a file holding it")
    kafka_ssl_check_hostname: bool = Field(
        default=True, description="Verify that a broker's certificate names the host connected to"
    )
    kafka_oauth_token_url: str | None = Field(default=None, description="OAUTHBEARER: the token endpoint")
    kafka_oauth_client_id: str | None = Field(default=None, description="OAUTHBEARER: the client id")
    kafka_oauth_client_secret: SecretStr | None = Field(default=None, description="OAUTHBEARER: the client secret")
    kafka_oauth_client_secret_file: Path | None = Field(default=None, description="Or a file holding it")
    kafka_oauth_scope: str | None = Field(default=None, description="OAUTHBEARER: the scope asked for, if any")
    kafka_connect_check_s: float = Field(
        default=10.0, gt=0, description="How long the start-up check may take to connect and authenticate"
    )

    @field_validator(
        "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password", "kafka_sasl_password_file",
        "kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file", "kafka_ssl_key_password",
        "kafka_ssl_key_password_file", "kafka_oauth_token_url", "kafka_oauth_client_id", "kafka_oauth_client_secret",
        "kafka_oauth_client_secret_file", "kafka_oauth_scope", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``KEEL_KAFKA_SSL_CA_FILE=`` means no CA file, not the current directory."""
        return None if value == "" else value

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @property
    def kafka_uses_sasl(self) -> bool:
        return self.kafka_security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def env_name(field: str) -> str:
    return f"KEEL_{field.upper()}"


def security_problems(settings: KafkaSecuritySettings) -> list[str]:
    """Why these settings cannot make a client, each naming a setting; empty when they fit."""
    problems = _sasl_problems(settings) if settings.kafka_uses_sasl else []
    if not settings.kafka_uses_sasl and settings.kafka_sasl_mechanism is not None:
        problems.append("KEEL_KAFKA_SASL_MECHANISM is set, but KEEL_KAFKA_SECURITY_PROTOCOL has no SASL")
    if not settings.kafka_uses_tls:
        tls = ("kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file")
        problems += [
            f"{env_name(name)} is set, but KEEL_KAFKA_SECURITY_PROTOCOL has no TLS (SSL or SASL_SSL)"
            for name in tls
            if getattr(settings, name) is not None
        ]
    if (settings.kafka_ssl_cert_file is None) != (settings.kafka_ssl_key_file is None):
        problems.append("mutual TLS needs both KEEL_KAFKA_SSL_CERT_FILE and KEEL_KAFKA_SSL_KEY_FILE")
    problems += _both_set(settings, "kafka_ssl_key_password")
    return problems


def _sasl_problems(settings: KafkaSecuritySettings) -> list[str]:
    mechanism = settings.kafka_sasl_mechanism
    if mechanism is None:
        return [f"KEEL_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs KEEL_KAFKA_SASL_MECHANISM"]
    if mechanism == "OAUTHBEARER":
        needed = ("kafka_oauth_token_url", "kafka_oauth_client_id")
        problems = [f"OAUTHBEARER needs {env_name(name)}" for name in needed if not getattr(settings, name)]
        if settings.kafka_oauth_client_secret is None and settings.kafka_oauth_client_secret_file is None:
            problems.append("OAUTHBEARER needs KEEL_KAFKA_OAUTH_CLIENT_SECRET or KEEL_KAFKA_OAUTH_CLIENT_SECRET_FILE")
        return problems + _both_set(settings, "kafka_oauth_client_secret")
    problems = [] if settings.kafka_sasl_username else [f"{mechanism} needs KEEL_KAFKA_SASL_USERNAME"]
    if settings.kafka_sasl_password is None and settings.kafka_sasl_password_file is None:
        problems.append(f"{mechanism} needs KEEL_KAFKA_SASL_PASSWORD or KEEL_KAFKA_SASL_PASSWORD_FILE")
    return problems + _both_set(settings, "kafka_sasl_password")


def _both_set(settings: KafkaSecuritySettings, secret: str) -> list[str]:
    if getattr(settings, secret) is not None and getattr(settings, f"{secret}_file") is not None:
        return [f"set {env_name(secret)} or {env_name(secret + '_file')}, not both"]
    return []


def check_security(settings: KafkaSecuritySettings) -> None:
    problems = security_problems(settings)
    if problems:
        raise KafkaSecurityError("Kafka security settings: " + "; ".join(problems))


def security_environment(settings: KafkaSecuritySettings) -> dict[str, str]:
    """The settings that differ from the defaults, as a child process's ``KEEL_KAFKA_...`` environment."""
    environment = {}
    for name, info in KafkaSecuritySettings.model_fields.items():
        value = getattr(settings, name)
        if value != info.default:
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            environment[env_name(name)] = str(text).lower() if isinstance(text, bool) else str(text)
    return environment


def read_secret(settings: KafkaSecuritySettings, secret: str) -> SecretStr | None:
    """The secret ``secret`` (a field name), set directly or read from its ``<secret>_file`` (one
    trailing newline dropped, as editors and ``echo`` leave it)."""
    value: SecretStr | None = getattr(settings, secret)
    path: Path | None = getattr(settings, f"{secret}_file")
    if value is not None or path is None:
        return value
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise KafkaSecurityError(f"cannot read {env_name(secret + '_file')} ({path}): {type(exc).__name__}") from exc
    text = text[:-1] if text.endswith("\n") else text
    if not text:
        raise KafkaSecurityError(f"{env_name(secret + '_file')} ({path}) is empty")
    return SecretStr(text)
