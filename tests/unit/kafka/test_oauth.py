"""The OAuth token provider shared by clients on several event loops, and aiokafka's OAUTHBEARER exchange
finished as RFC 7628 says when the broker refuses the token (the real refusals: tests/integration/test_oauth_broker.py)."""

from __future__ import annotations

import asyncio
import threading

import httpx
from aiokafka.conn import AIOKafkaConnection
from pydantic import SecretStr

import streams.kafka.connection  # noqa: F401  (installs the authenticator, as every Keel process does)
from streams.kafka.oauth import ClientCredentialsTokenProvider, RefusalAwareOAuthAuthenticator


class SlowEndpoint(httpx.AsyncBaseTransport):
    """A token endpoint that answers once ``release`` is set, so that callers pile up on the lock."""

    def __init__(self) -> None:
        self.asked = 0
        self.release = threading.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.asked += 1
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return httpx.Response(200, json={"access_token": f"token-{self.asked}", "expires_in": 3600})


def test_one_provider_serves_clients_on_two_event_loops() -> None:
    """faust runs its consumer on a loop of its own and its producer on the main one, both with the same
    provider: a wait for the token on one loop must not meet a lock bound to the other (it did at a refresh)."""
    endpoint = SlowEndpoint()
    provider = ClientCredentialsTokenProvider(
        token_url="https://idp.example/token", client_id="keel", client_secret=SecretStr("s"), scope=None,
        transport=endpoint,
    )  # fmt: skip
    tokens: list[str] = []
    failures: list[BaseException] = []

    def client(callers: int) -> None:
        async def ask() -> None:
            tokens.extend(await asyncio.wait_for(asyncio.gather(*(provider.token() for _ in range(callers))), 30))

        try:
            asyncio.run(ask())
        except BaseException as exc:  # reported below
            failures.append(exc)

    for _refresh in range(2):  # the second round: each loop's lock has been waited on before
        provider._token = None  # as when the token is due for refreshing
        threads = [threading.Thread(target=client, args=(3,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        endpoint.release.set()
        for thread in threads:
            thread.join(timeout=60)
        endpoint.release.clear()
    assert not failures, failures
    assert len(tokens) == 12 and all(token.startswith("token-") for token in tokens)


async def test_a_refused_token_is_answered_so_that_the_broker_fails_the_exchange() -> None:
    """Kafka answers a rejected token with an error challenge and fails only after the client's reply;
    aiokafka alone ended the exchange there, as if authenticated."""

    class Token:
        async def token(self) -> str:
            return "a.jwt.token"

    authenticator = RefusalAwareOAuthAuthenticator(sasl_oauth_token_provider=Token())
    first = await authenticator.step(None)
    assert first is not None and first[0].startswith(b"n,,\x01auth=Bearer a.jwt.token")
    assert await authenticator.step(b'{"status":"invalid_token"}') == (b"\x01", True)
    assert await authenticator.step(b"") is None

    accepted = RefusalAwareOAuthAuthenticator(sasl_oauth_token_provider=Token())
    await accepted.step(None)
    assert await accepted.step(b"") is None  # accepted: the server's final message is empty


async def test_every_connection_uses_the_refusal_aware_authenticator() -> None:
    provider = ClientCredentialsTokenProvider(
        token_url="https://idp.example/token", client_id="keel", client_secret=SecretStr("s"), scope=None
    )
    connection = AIOKafkaConnection(
        "127.0.0.1", 9092, security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=provider,
    )  # fmt: skip
    assert isinstance(connection.authenticator_oauth(), RefusalAwareOAuthAuthenticator)
