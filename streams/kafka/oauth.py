"""OAUTHBEARER tokens for aiokafka from an OAuth 2.0 client-credentials grant (RFC 6749 4.4), as
Confluent Cloud, MSK's IAM gateways, Strimzi's Keycloak and most identity providers issue them.

``install()`` (called when streams/kafka/connection.py is imported) makes aiokafka finish a refused
OAUTHBEARER exchange as RFC 7628 3.2.2 says: a broker that rejects a token (bad signature, expired,
another audience or issuer) answers it with an error challenge, not an error code, and fails the
authentication only once the client has replied. aiokafka 0.14 takes that challenge for success and
sends its next request on a connection the broker never authenticated.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import httpx
from aiokafka import conn
from aiokafka.abc import AbstractTokenProvider
from pydantic import SecretStr

from streams.core.errors import KafkaAuthRejected

# A token is asked for again this long before it expires, so that a connection never presents a stale one.
REFRESH_MARGIN_S = 60.0
# RFC 7628 3.2.2: the client's reply to the server's error challenge (a lone key-value separator).
_ERROR_REPLY = b"\x01"


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka is untyped
    """One token shared by every connection of the process, fetched again shortly before it expires.
    A process may run clients on several event loops (faust's consumer runs in a thread with a loop of
    its own): each loop gets its own lock, since an asyncio lock is bound to one loop."""

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str | None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``transport``: httpx's, replaced in tests."""
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._timeout_s = timeout_s
        self._transport = transport
        self._token: str | None = None
        self._expires_at = 0.0
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"ClientCredentialsTokenProvider({self._token_url}, client {self._client_id})"

    async def token(self) -> str:
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self._token is None or time.monotonic() >= self._expires_at - REFRESH_MARGIN_S:
                self._token, lifetime_s = await self._fetch()
                self._expires_at = time.monotonic() + lifetime_s
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"} | ({"scope": self._scope} if self._scope else {})
        auth = httpx.BasicAuth(self._client_id, self._client_secret.get_secret_value())
        where = f"the token endpoint KEEL_KAFKA_OAUTH_TOKEN_URL ({self._token_url})"
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s, transport=self._transport) as client:
                response = await client.post(self._token_url, data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise KafkaAuthRejected(f"{where} did not answer: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise KafkaAuthRejected(
                f"{where} refused client KEEL_KAFKA_OAUTH_CLIENT_ID={self._client_id} "
                f"with HTTP {response.status_code}; check KEEL_KAFKA_OAUTH_CLIENT_SECRET and KEEL_KAFKA_OAUTH_SCOPE"
            )
        try:
            body = response.json()
            token, lifetime_s = str(body["access_token"]), float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise KafkaAuthRejected(f"{where} answered without an access_token") from exc
        return token, lifetime_s


class RefusalAwareOAuthAuthenticator(conn.OAuthAuthenticator):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka's, except that a server challenge after the token (the broker's refusal) is answered,
    so that the broker ends the exchange with an authentication error aiokafka raises."""

    def __init__(self, *, sasl_oauth_token_provider: AbstractTokenProvider) -> None:
        super().__init__(sasl_oauth_token_provider=sasl_oauth_token_provider)
        self._refusal_answered = False

    async def step(self, payload: bytes | None) -> tuple[bytes, bool] | None:
        if self._token_sent and payload and not self._refusal_answered:
            self._refusal_answered = True
            return _ERROR_REPLY, True
        result: tuple[bytes, bool] | None = await super().step(payload)
        return result


def _authenticator_oauth(connection: Any) -> RefusalAwareOAuthAuthenticator:
    return RefusalAwareOAuthAuthenticator(sasl_oauth_token_provider=connection._sasl_oauth_token_provider)


def install() -> None:
    """Every aiokafka connection of this process authenticates with ``RefusalAwareOAuthAuthenticator``."""
    conn.AIOKafkaConnection.authenticator_oauth = _authenticator_oauth
