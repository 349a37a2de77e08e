"""What the model clients share about one HTTP call: sending it within its budget, turning transport
failures into ``ProviderError``s (and whether the request may have been sent), error snippets with the
API key blanked out, and the status classes common to OpenAI and Anthropic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from streams.core.errors import (
    ContextLengthExceeded,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderRequestRejected,
    ProviderServerError,
    ProviderTimeout,
)
from streams.core.ports.model import ProviderLimits

SNIPPET_CHARS = 300
# Failures before any byte of the request left: no connection (or no pooled one) was ever had.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError, httpx.UnsupportedProtocol)


def request_sent(exc: BaseException) -> bool:
    """Whether a call that failed with ``exc`` may have reached the server (and been served, and billed).
    An overall timeout (``TimeoutError``) may come in any phase: it counts as sent."""
    return not isinstance(exc, _NOT_SENT)


async def post_within(
    http: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
    describe: Callable[[str], str],
) -> tuple[httpx.Response, float]:
    """POST ``content`` and read the whole answer within ``timeout_s``; the answer and its latency."""
    started = time.perf_counter()
    try:
        # httpx bounds each phase; asyncio.timeout bounds the sum, so a body that trickles in
        # byte by byte cannot outlast the request's budget.
        async with asyncio.timeout(timeout_s):
            response = await http.post(url, content=content, headers=dict(headers), timeout=timeout_s)
    except (TimeoutError, httpx.TimeoutException) as exc:
        message = f"no complete answer within {timeout_s:g} s ({type(exc).__name__})"
        raise ProviderTimeout(describe(message), sent=request_sent(exc)) from exc
    except httpx.DecodingError as exc:
        raise ProviderBadResponse(describe(f"undecodable body: {exc}")) from exc
    except httpx.TransportError as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise ProviderConnectionError(describe(detail), sent=request_sent(exc)) from exc
    return response, time.perf_counter() - started


def status_error(
    provider: str,
    model: str,
    status: int,
    body_text: str,
    *,
    too_long: tuple[str, ...],
    limits: ProviderLimits | None,
    secret: str | None,
) -> ProviderError:
    """The error a non-2xx answer means; its message names provider, model, status and the body. A 400
    or 413 whose body names one of ``too_long`` (lower case) is ``ContextLengthExceeded``."""
    message = f"{provider} model {model}: HTTP {status}: {snippet(body_text, secret=secret)}"
    if status in (400, 413) and any(phrase in body_text.lower() for phrase in too_long):
        return ContextLengthExceeded(message, limits=limits)
    return common_error(status, message, limits)


@dataclass(frozen=True, slots=True)
class Answer:
    """A 2xx body being read: the errors it may mean carry provider, model, a snippet and ``limits``."""

    provider: str
    model: str
    content: bytes
    secret: str | None
    limits: ProviderLimits | None

    def fail(self, error: type[ProviderError], why: str) -> ProviderError:
        text = self.content.decode("utf-8", errors="replace")
        message = f"{self.provider} model {self.model}: HTTP 200: {why}: {snippet(text, secret=self.secret)}"
        return error(message, limits=self.limits)

    def json(self) -> Any:
        try:
            return orjson.loads(self.content)
        except orjson.JSONDecodeError as exc:
            raise self.fail(ProviderBadResponse, "body is not JSON") from exc


def common_error(status: int, message: str, limits: ProviderLimits | None) -> ProviderError:
    """The error class a status means when nothing more specific applies."""
    if status == 429:
        retry_after_s = limits.retry_after_s if limits else None
        return ProviderRateLimited(message, retry_after_s=retry_after_s, limits=limits)
    if status in (401, 403):
        return ProviderAuthError(message, limits=limits)
    if 400 <= status < 500:
        return ProviderRequestRejected(message, limits=limits)
    if status >= 500:
        return ProviderServerError(message, limits=limits)
    return ProviderBadResponse(message, limits=limits)


def count(value: Any) -> int:
    """A token count from a usage block: a whole number of 0 or more, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def snippet(text: str, *, secret: str | None = None) -> str:
    """At most ``SNIPPET_CHARS`` of a body for an error message, with the API key blanked out."""
    text = redact(" ".join(text.split()), secret)
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "..."


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text
