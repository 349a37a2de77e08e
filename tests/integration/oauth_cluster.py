"""The secured local broker with OAUTHBEARER on as well (tokens validated by Kafka's own
``OAuthBearerValidatorCallbackHandler`` against the loopback identity provider's JWKS), and how a Keel
process of one principal connects to it with a client-credentials grant instead of a SCRAM password.
The admin stays a SCRAM user (topics, ACLs); every OAuth client of the provider is a principal of the plan."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from identity_provider import IdentityProvider, OAuthClient
from secure_cluster import CANARY, SecureCluster

from streams.core.kafka_client import ClientConfig
from streams.core.kafka_security import KafkaSecuritySettings
from streams.core.settings import Settings
from streams.kafka.connection import client_config

AUDIENCE = "keel-test-kafka"
# Every setting a process could authenticate with besides OAuth, blanked (empty is unset): the admin's
# SCRAM settings, which the stacks' own clients use, must not reach a process that should use a token.
NO_PASSWORD = {"KEEL_KAFKA_SASL_USERNAME": "", "KEEL_KAFKA_SASL_PASSWORD": "", "KEEL_KAFKA_SASL_PASSWORD_FILE": ""}


def oauth_clients(principals: list[str]) -> list[OAuthClient]:
    """One client per principal, its id other than the principal (the broker must take the token's sub)."""
    return [OAuthClient(f"{p}.client", f"{CANARY}-oauth-{secrets.token_hex(12)}", p) for p in principals]


@dataclass(frozen=True)
class OAuthCluster:
    secure: SecureCluster
    idp: IdentityProvider

    @property
    def bootstrap(self) -> str:
        return self.secure.bootstrap

    def principal(self, role: str) -> str:
        return self.secure.principal(role)

    def oauth_client(self, role: str) -> OAuthClient:
        principal = self.principal(role)
        return next(c for c in self.idp.clients.values() if c.principal == principal)

    def security(self, role: str, *, secret: str | None = None) -> KafkaSecuritySettings:
        client = self.oauth_client(role)
        return KafkaSecuritySettings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="OAUTHBEARER",
            kafka_oauth_token_url=self.idp.token_url,
            kafka_oauth_client_id=client.client_id,
            kafka_oauth_client_secret=secret or client.secret,
            kafka_ssl_ca_file=self.secure.files.ca_file,
        )

    def environment(self, role: str, *, secret: str | None = None) -> dict[str, str]:
        """A Keel process of ``role``'s principal, authenticated by OAUTHBEARER only."""
        client = self.oauth_client(role)
        return {
            **NO_PASSWORD,
            "KEEL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KEEL_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "KEEL_KAFKA_OAUTH_TOKEN_URL": self.idp.token_url,
            "KEEL_KAFKA_OAUTH_CLIENT_ID": client.client_id,
            "KEEL_KAFKA_OAUTH_CLIENT_SECRET": secret or client.secret,
            "KEEL_KAFKA_OAUTH_CLIENT_SECRET_FILE": "",
            "KEEL_KAFKA_SSL_CA_FILE": str(self.secure.files.ca_file),
        }

    def client(self, role: str) -> ClientConfig:
        """In this process: aiokafka with Keel's token provider, as ``role``'s principal."""
        return client_config(Settings(bootstrap_servers=self.bootstrap, **self.security(role).model_dump()))

    def secrets(self) -> list[str]:
        return [c.secret for c in self.idp.clients.values()]
