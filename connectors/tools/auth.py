"""The credentials a connector sends: a bearer token, basic auth, or an OAuth 2.0 client-credentials
token (RFC 6749 section 4.4) fetched from the token endpoint, cached, and fetched again shortly before
it expires or when the API refuses it. Secrets are read when the connector's client is built and kept
as ``SecretStr``; no message here ever holds one."""

from __future__ import annotations

import asyncio
import base64
import time

import httpx
import orjson
from pydantic import SecretStr

from streams.core.connectors import Auth, BasicAuth, BearerAuth, ClientCredentialsAuth
from streams.core.errors import ToolAuthFailed, ToolUnavailable

REFRESH_EARLY_S = 30.0  # fetch a new token this long before the old one expires
DEFAULT_TOKEN_LIFETIME_S = 300.0  # a token endpoint that says nothing of expires_in


class Credentials:
    """The ``Authorization`` header of a connector's calls (none without auth)."""

    async def header(self, http: httpx.AsyncClient, *, timeout_s: float) -> str | None:
        return None

    def refused(self) -> bool:
        """The API refused the header: forget it. True when a new one may do better (a fresh token)."""
        return False

    def secrets(self) -> list[str]:
        """The secret values, to blank out of any text a message might show."""
        return []


class Static(Credentials):
    def __init__(self, header: SecretStr) -> None:
        self._header = header

    async def header(self, http: httpx.AsyncClient, *, timeout_s: float) -> str | None:
        return self._header.get_secret_value()

    def secrets(self) -> list[str]:
        return [self._header.get_secret_value()]


class ClientCredentials(Credentials):
    def __init__(self, auth: ClientCredentialsAuth, secret: SecretStr, *, connector: str) -> None:
        self._auth, self._secret, self._connector = auth, secret, connector
        self._token: SecretStr | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def header(self, http: httpx.AsyncClient, *, timeout_s: float) -> str | None:
        async with self._lock:  # one fetch at a time; the others use its token
            if self._token is None or time.monotonic() >= self._expires_at - REFRESH_EARLY_S:
                await self._fetch(http, timeout_s=timeout_s)
            assert self._token is not None
            return f"Bearer {self._token.get_secret_value()}"

    def refused(self) -> bool:
        self._token = None
        return True

    def secrets(self) -> list[str]:
        token = [self._token.get_secret_value()] if self._token else []
        return [self._secret.get_secret_value(), *token]

    async def _fetch(self, http: httpx.AsyncClient, *, timeout_s: float) -> None:
        auth = self._auth
        form = {"grant_type": "client_credentials"}
        form |= {k: v for k, v in (("scope", auth.scope), ("audience", auth.audience)) if v}
        pair = f"{auth.client_id}:{self._secret.get_secret_value()}".encode()
        headers = {"Authorization": f"Basic {base64.b64encode(pair).decode()}", "Accept": "application/json"}
        where = f"connector {self._connector}: token endpoint {auth.token_url}"
        try:
            response = await http.post(auth.token_url, data=form, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise ToolUnavailable(f"{where}: {type(exc).__name__}", sent=False) from exc
        if response.status_code in (400, 401, 403):
            raise ToolAuthFailed(f"{where}: HTTP {response.status_code}: the client credentials were refused")
        if response.status_code != 200:
            raise ToolUnavailable(f"{where}: HTTP {response.status_code}", sent=False)
        token, lifetime_s = _token_of(response.content)
        if token is None:
            raise ToolAuthFailed(f"{where}: the answer holds no access_token")
        self._token, self._expires_at = SecretStr(token), time.monotonic() + lifetime_s


def _token_of(content: bytes) -> tuple[str | None, float]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None, 0.0
    if not isinstance(body, dict):
        return None, 0.0
    token, expires_in = body.get("access_token"), body.get("expires_in")
    lifetime_s = (
        float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else DEFAULT_TOKEN_LIFETIME_S
    )
    return (token if isinstance(token, str) and token else None), lifetime_s


def credentials(auth: Auth | None, *, connector: str) -> Credentials:
    """The connector's credentials, its secrets read now (a missing one is a ``ConnectorConfigError``)."""
    where = f"connector {connector}: auth"
    if isinstance(auth, BearerAuth):
        return Static(SecretStr(f"Bearer {auth.token.read(f'{where}.token').get_secret_value()}"))
    if isinstance(auth, BasicAuth):
        password = auth.password.read(f"{where}.password").get_secret_value()
        pair = base64.b64encode(f"{auth.username}:{password}".encode()).decode()
        return _Basic(SecretStr(f"Basic {pair}"), password)
    if isinstance(auth, ClientCredentialsAuth):
        return ClientCredentials(auth, auth.client_secret.read(f"{where}.client_secret"), connector=connector)
    return Credentials()


class _Basic(Static):
    def __init__(self, header: SecretStr, password: str) -> None:
        super().__init__(header)
        self._password = SecretStr(password)

    def secrets(self) -> list[str]:
        return [*super().secrets(), self._password.get_secret_value()]
