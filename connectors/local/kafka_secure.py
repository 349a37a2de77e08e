"""The local broker as a secured cluster (``keel kafka start --secure``, and the secure test fixtures).

One SASL_SSL listener for clients (SCRAM-SHA-512 over TLS) and the controller listener on mutual TLS,
certificates made for the run with ``trustme`` (a CA of its own; PEM files, which Kafka 4 reads as
keystores), SCRAM users created when the storage is formatted (``--add-scram``), and the
StandardAuthorizer with ``allow.everyone.if.no.acl.found=false``: a principal may do only what an ACL
allows, except ``admin`` and the broker itself (super users). Loopback only, as the plain broker.

Everything lives in the broker's state dir: ``tls/`` (the CA and the broker's key and chain) and
``secrets/<user>.password`` (mode 0600), which clients read through ``KEEL_KAFKA_SASL_PASSWORD_FILE``.

Optionally (``OAuthValidation``; off unless asked for) the same listener also takes OAUTHBEARER, each
token validated by Kafka's own ``OAuthBearerValidatorCallbackHandler``: signature against the identity
provider's JWKS, expiry, audience and issuer. The principal is the token's ``sub``, so the ACLs of
``User:<principal>`` apply to OAuth clients as they do to SCRAM users. Inter-broker traffic stays SCRAM.
Kafka's unsecured validator, which takes any token, is never configured.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key

from streams.core.errors import ConfigError
from streams.core.kafka_client import ClientConfig, build_client_config
from streams.core.kafka_security import KafkaSecuritySettings, SaslMechanism

ADMIN = "admin"
BROKER_CN = "keel-local-broker"
MECHANISM: SaslMechanism = "SCRAM-SHA-512"
_USER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Kafka 4 fetches a JWKS only from a URL this JVM system property lists (empty by default).
ALLOWED_URLS_PROPERTY = "org.apache.kafka.sasl.oauthbearer.allowed.urls"
OAUTH_VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"
OAUTH_LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
_JWKS_URL = re.compile(r"^https?://[^\s,]+$")
_CLAIM_VALUE = re.compile(r"^[^\s,]{1,512}$")


@dataclass(frozen=True)
class OAuthValidation:
    """How the broker validates OAUTHBEARER tokens: the identity provider's JWKS and the audience and
    issuer a token must name (Kafka requires both to be checked)."""

    jwks_url: str
    audience: str
    issuer: str

    def __post_init__(self) -> None:
        # Each value becomes a line of server.properties or a JVM option: no whitespace, no list separator.
        if not _JWKS_URL.match(self.jwks_url):
            raise ConfigError("the OAuth JWKS URL must be an http(s) URL without whitespace or commas")
        if not (_CLAIM_VALUE.match(self.audience) and _CLAIM_VALUE.match(self.issuer)):
            raise ConfigError("the OAuth audience and issuer must be non-empty, without whitespace or commas")

    def jvm_options(self) -> list[str]:
        return [f"-D{ALLOWED_URLS_PROPERTY}={self.jwks_url}"]


@dataclass(frozen=True)
class SecureFiles:
    """Where a secured broker's certificates and users' passwords are."""

    state_dir: Path

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def broker_pem(self) -> Path:
        return self.tls_dir / "broker.pem"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"

    def password_file(self, user: str) -> Path:
        return self.secrets_dir / f"{user}.password"

    def users(self) -> list[str]:
        return sorted(path.stem for path in self.secrets_dir.glob("*.password"))

    def security(self, user: str = ADMIN) -> KafkaSecuritySettings:
        """The client settings of ``user`` (``KEEL_KAFKA_...`` as fields)."""
        return KafkaSecuritySettings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism=MECHANISM,
            kafka_sasl_username=user,
            kafka_sasl_password_file=self.password_file(user),
            kafka_ssl_ca_file=self.ca_file,
        )

    def environment(self, user: str) -> dict[str, str]:
        """The same, as the environment of a Keel process."""
        return {
            "KEEL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KEEL_KAFKA_SASL_MECHANISM": MECHANISM,
            "KEEL_KAFKA_SASL_USERNAME": user,
            "KEEL_KAFKA_SASL_PASSWORD_FILE": str(self.password_file(user)),
            "KEEL_KAFKA_SSL_CA_FILE": str(self.ca_file),
        }

    def client(self, bootstrap: str, user: str = ADMIN) -> ClientConfig:
        return build_client_config(self.security(user), bootstrap_servers=bootstrap)


def make_certificates(files: SecureFiles) -> None:
    """A CA for this state dir and the broker's certificate (127.0.0.1 and localhost), unless there
    are already. The key is PKCS#8, the form Kafka's PEM keystore reads."""
    if files.ca_file.exists() and files.broker_pem.exists():
        return
    files.tls_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Keel local broker")
    leaf = ca.issue_cert("127.0.0.1", "localhost", common_name=BROKER_CN)
    key = load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    pkcs8 = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    write_private(files.broker_pem, pkcs8 + chain)
    ca.cert_pem.write_to_path(str(files.ca_file))


def ensure_users(files: SecureFiles, users: list[str]) -> dict[str, str]:
    """A password for ``admin`` and each of ``users`` (kept when one exists); name -> password."""
    names = list(dict.fromkeys([ADMIN, *users]))
    bad = [name for name in names if not _USER_NAME.match(name)]
    if bad:
        raise ConfigError(f"SCRAM user names must match {_USER_NAME.pattern}: {', '.join(bad)}")
    files.secrets_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not files.password_file(name).exists():
            write_private(files.password_file(name), secrets.token_urlsafe(24).encode())
    return {name: files.password_file(name).read_text() for name in names}


def scram_arguments(passwords: dict[str, str]) -> list[str]:
    """``kafka-storage format`` arguments that create the SCRAM users."""
    return [
        arg for name, pw in passwords.items() for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={pw}]")
    ]


def secure_properties(
    files: SecureFiles, *, port: int, controller_port: int, admin_password: str, oauth: OAuthValidation | None = None
) -> str:
    """Laid over the plain broker's server.properties (later keys win in a Java properties file)."""
    jaas = f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{ADMIN}" password="{admin_password}";'  # noqa: E501
    mechanisms = f"{MECHANISM},OAUTHBEARER" if oauth is not None else MECHANISM
    return f"""
# --- secured (connectors/local/kafka_secure.py) ---
listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_SSL://127.0.0.1:{port}
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms={mechanisms}
sasl.mechanism.inter.broker.protocol={MECHANISM}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}
ssl.keystore.type=PEM
ssl.keystore.location={files.broker_pem}
ssl.truststore.type=PEM
ssl.truststore.location={files.ca_file}
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+).*$/$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:{ADMIN};User:{BROKER_CN}
{oauth_properties(oauth) if oauth is not None else ""}"""


def oauth_properties(oauth: OAuthValidation) -> str:
    """OAUTHBEARER on the SASL_SSL listener, validated against the JWKS (never the unsecured validator)."""
    return f"""listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class={OAUTH_VALIDATOR}
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config={OAUTH_LOGIN_MODULE} required ;
sasl.oauthbearer.jwks.endpoint.url={oauth.jwks_url}
sasl.oauthbearer.expected.audience={oauth.audience}
sasl.oauthbearer.expected.issuer={oauth.issuer}
sasl.oauthbearer.sub.claim.name=sub
"""


def secure_setup(
    files: SecureFiles, users: list[str], port: int, controller_port: int, *, oauth: OAuthValidation | None = None
) -> tuple[str, list[str]]:
    """Certificates and passwords made (kept when they exist); the properties to lay over the plain
    broker's and the ``format`` arguments that create the users."""
    make_certificates(files)
    passwords = ensure_users(files, users)
    overlay = secure_properties(
        files, port=port, controller_port=controller_port, admin_password=passwords[ADMIN], oauth=oauth
    )
    return overlay, scram_arguments(passwords)


def write_private(path: Path, data: bytes) -> None:
    """Readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
