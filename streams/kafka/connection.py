"""A process's Kafka client settings, built once from its ``Settings``, and the start-up check that the
cluster accepts them.

``client_config(settings)`` is what every Keel process passes to its clients (streams/core/kafka_client.py
builds it). ``check_access`` connects once, with a short timeout, and turns a refused password, an
untrusted certificate or an unsupported mechanism into one ``KafkaAccessError`` naming the setting,
before any client starts retrying (aiokafka's clients retry a refused handshake for ever, logging it).
A cluster that does not answer at all is left to the clients' own retries: it may be starting.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from streams.core.errors import KafkaAccessError, KafkaAuthRejected, KafkaTlsRejected
from streams.core.kafka_client import ClientConfig, build_client_config
from streams.core.kafka_security import read_secret
from streams.core.settings import Settings
from streams.kafka import oauth
from streams.kafka.oauth import ClientCredentialsTokenProvider

oauth.install()  # a broker's refusal of a token is an error, not a connection (streams/kafka/oauth.py)
log = logging.getLogger(__name__)
AUTH_REFUSED = (SaslAuthenticationFailed, AuthenticationFailedError, IllegalSaslStateError)


def client_config(settings: Settings) -> ClientConfig:
    """The client settings of this process (raises ``KafkaSecurityError`` naming a setting at fault)."""
    provider = None
    if settings.kafka_uses_sasl and settings.kafka_sasl_mechanism == "OAUTHBEARER":
        secret = read_secret(settings, "kafka_oauth_client_secret")
        if secret is not None and settings.kafka_oauth_token_url and settings.kafka_oauth_client_id:
            provider = ClientCredentialsTokenProvider(
                token_url=settings.kafka_oauth_token_url,
                client_id=settings.kafka_oauth_client_id,
                client_secret=secret,
                scope=settings.kafka_oauth_scope,
            )
    return build_client_config(settings, bootstrap_servers=settings.bootstrap_servers, token_provider=provider)


async def check_access(config: ClientConfig, *, timeout_s: float = 10.0) -> bool:
    """Connect and authenticate to the first bootstrap server that answers; True once one accepted.
    False when none answered within ``timeout_s`` (the cluster may be starting: the clients retry).
    Raises ``KafkaTlsRejected`` or ``KafkaAuthRejected`` when one refused this client."""
    security = config.kwargs()
    del security["bootstrap_servers"]
    servers, closed = config.bootstrap_servers.split(","), 0
    for server in servers:
        host, _, port = server.strip().rpartition(":")
        try:
            async with asyncio.timeout(timeout_s):
                connection = await create_conn(
                    host.strip("[]"), int(port), client_id="keel-access-check",
                    request_timeout_ms=int(timeout_s * 1000), **security,
                )  # fmt: skip
        except ssl.SSLError as exc:
            raise tls_refused(config, server, exc) from exc
        except AUTH_REFUSED as exc:
            raise auth_refused(config, server, exc) from exc
        except UnsupportedSaslMechanismError as exc:
            raise KafkaAuthRejected(
                f"{server} does not offer KEEL_KAFKA_SASL_MECHANISM={config.sasl_mechanism} on this listener"
            ) from exc
        except KafkaConnectionError as exc:
            closed += "closed" in str(exc)  # accepted, then closed: a listener that speaks another protocol
            log.warning("the start-up check could not connect to %s (%s)", server, exc)
            continue
        except (OSError, KafkaError, TimeoutError, ValueError) as exc:
            log.warning("the start-up check could not reach %s (%s); the clients will keep trying", server, exc)
            continue
        connection.close()
        return True
    if closed == len(servers):
        raise KafkaAccessError(
            f"every bootstrap server closed the connection as {config.describe()} began: does "
            f"KEEL_KAFKA_SECURITY_PROTOCOL={config.security_protocol} match the cluster's listener?"
        )
    return False


def tls_refused(config: ClientConfig, server: str, exc: ssl.SSLError) -> KafkaTlsRejected:
    if isinstance(exc, ssl.SSLCertVerificationError):
        if "hostname" in str(exc.verify_message).lower() or "ip address mismatch" in str(exc.verify_message).lower():
            hint = "the broker's certificate does not name that host (KEEL_KAFKA_SSL_CHECK_HOSTNAME)"
        else:
            hint = f"its certificate is not trusted ({exc.verify_message}): check KEEL_KAFKA_SSL_CA_FILE"
    elif "CERTIFICATE_REQUIRED" in str(exc).upper() or "BAD_CERTIFICATE" in str(exc).upper():
        hint = "it wants a client certificate it accepts: check KEEL_KAFKA_SSL_CERT_FILE and KEEL_KAFKA_SSL_KEY_FILE"
    else:
        hint = f"the TLS handshake failed ({exc.reason}): check KEEL_KAFKA_SECURITY_PROTOCOL and KEEL_KAFKA_SSL_CA_FILE"
    return KafkaTlsRejected(f"TLS to {server} failed: {hint}")


def auth_refused(config: ClientConfig, server: str, exc: KafkaError) -> KafkaAuthRejected:
    if config.sasl_mechanism == "OAUTHBEARER":
        settings = "KEEL_KAFKA_OAUTH_CLIENT_ID, KEEL_KAFKA_OAUTH_CLIENT_SECRET and KEEL_KAFKA_OAUTH_SCOPE"
    else:
        settings = f"KEEL_KAFKA_SASL_USERNAME={config.sasl_username} and KEEL_KAFKA_SASL_PASSWORD"
    return KafkaAuthRejected(
        f"{server} refused {config.sasl_mechanism} authentication ({type(exc).__name__}): check {settings}"
    )
