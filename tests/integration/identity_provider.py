"""A loopback OAuth 2.0 identity provider for the OAUTHBEARER tests: a client-credentials token endpoint
(RFC 6749 4.4, clients authenticated with HTTP Basic as 2.3.1 says) issuing RS256-signed JWT access
tokens (RFC 9068's claims: iss, sub, aud, iat, exp, scope, jti, client_id), and the JWKS the broker
validates them against. The token's ``sub`` is the client's Keel principal, not its client id, so a
test sees that the broker takes the principal from the token.

aiohttp in a thread of its own (its own event loop), so that a synchronous fixture can start it before
the broker (which fetches the JWKS as it starts) and keep it for the session.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

DEFAULT_SCOPE = "kafka"


@dataclass(frozen=True, repr=False)
class OAuthClient:
    client_id: str
    secret: str
    principal: str  # the token's sub
    scopes: frozenset[str] = frozenset({DEFAULT_SCOPE})

    def __repr__(self) -> str:
        return f"OAuthClient({self.client_id} as {self.principal})"


def signing_key() -> RSAKey:
    """A fresh RSA key (cryptography), as joserfc's JWK with its thumbprint as the key id."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = RSAKey.import_key(pem, {"use": "sig", "alg": "RS256"})
    return RSAKey.import_key(pem, {"use": "sig", "alg": "RS256", "kid": key.thumbprint()})


@dataclass
class IdentityProvider:
    clients: Mapping[str, OAuthClient]
    audience: str
    lifetime_s: int = 3600
    base_url: str = ""
    key: RSAKey = field(default_factory=signing_key)
    issued: list[str] = field(default_factory=list)  # the sub of every token issued, in order
    refused: list[str] = field(default_factory=list)  # the client id of every refused request

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/jwks"

    def sign(self, claims: Mapping[str, Any], *, key: RSAKey | None = None) -> str:
        """A JWT over ``claims``, signed with this provider's key (or ``key``: a forger's)."""
        key = key or self.key
        return jwt.encode({"alg": "RS256", "typ": "JWT", "kid": str(key.kid)}, dict(claims), key)

    def claims(self, principal: str, *, scope: str = DEFAULT_SCOPE, client_id: str = "") -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "sub": principal, "aud": self.audience, "iat": now, "nbf": now,
                "exp": now + self.lifetime_s, "scope": scope, "client_id": client_id or principal,
                "jti": secrets.token_hex(8)}  # fmt: skip

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        return app

    async def _jwks(self, _request: web.Request) -> web.Response:
        public = {**self.key.as_dict(private=False), "kid": str(self.key.kid)}
        return web.json_response({"keys": [public]})

    async def _token(self, request: web.Request) -> web.Response:
        client = self._authenticated(request.headers.get("Authorization", ""))
        if client is None:
            return _error(401, "invalid_client", headers={"WWW-Authenticate": 'Basic realm="keel-test-idp"'})
        form = await request.post()
        if "grant_type" not in form:
            return _error(400, "invalid_request")
        if form["grant_type"] != "client_credentials":
            return _error(400, "unsupported_grant_type")
        asked = set(str(form.get("scope", DEFAULT_SCOPE)).split())
        if not asked <= client.scopes:
            return _error(400, "invalid_scope")
        token = self.sign(self.claims(client.principal, scope=" ".join(sorted(asked)), client_id=client.client_id))
        self.issued.append(client.principal)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime_s,
                "scope": " ".join(sorted(asked))}  # fmt: skip
        return web.json_response(body, headers=_NO_STORE)

    def _authenticated(self, authorization: str) -> OAuthClient | None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "basic":
            self.refused.append("")
            return None
        try:
            user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            self.refused.append("")
            return None
        client_id, secret = unquote_plus(user), unquote_plus(password)  # RFC 6749 2.3.1: form-encoded first
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.secret.encode(), secret.encode()):
            self.refused.append(client_id)
            return None
        return client


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 5.1


def _error(status: int, error: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error}, status=status, headers={**_NO_STORE, **(headers or {})})


@contextlib.contextmanager
def identity_provider(
    clients: list[OAuthClient], *, audience: str, lifetime_s: int = 3600
) -> Iterator[IdentityProvider]:
    """The provider serving on a free loopback port until the block ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    provider = IdentityProvider({c.client_id: c for c in clients}, audience, lifetime_s,
                                base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")  # fmt: skip
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(provider.app(), access_log=None)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.SockSite(runner, sock).start())
    thread = threading.Thread(target=loop.run_forever, name="identity-provider", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        sock.close()
