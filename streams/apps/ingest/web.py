"""The ingest endpoint: ``POST /ingest/{source}`` takes one webhook of a declared source.

In order: an unknown source is 404; a body over the source's ``max_body_bytes`` 413 (read no further);
over its ``requests_per_minute`` 429 with ``Retry-After``; a signature that does not verify, or a signed
time outside the tolerance, 401; a body that cannot become an event 400. Only then is the event written
to its agent's input topic, keyed by its business key, and the answer is 202 with the event id once the
broker has acknowledged it, or 503 with ``Retry-After`` when it does not in time: the sender sends it
again, with the same idempotency key, so it is still one event. Nothing is written for a refused request.

``GET /health``, ``GET /metrics`` (Prometheus). The access log names the source, the status and the
event id, never a body, a header's value or a secret.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from streams.contracts.headers import H_EVENT_ID
from streams.contracts.out_record import OutRecord
from streams.core.catalogue import Catalogue
from streams.ingest.limit import RequestBucket
from streams.ingest.signatures import SignatureRefused, verify
from streams.ingest.sources import Source, WebhookRefused
from streams.pipeline.decode import encode_request

log = logging.getLogger("streams.ingest.access")
Send = Callable[[list[OutRecord]], Awaitable[object]]
RETRY_AFTER_S = 5


@dataclass(frozen=True, slots=True)
class Route:
    source: Source
    topic: str  # the agent's input topic
    secret: bytes


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "keel_ingest_requests", "Webhooks by source and answer", ["source", "status"], registry=self.registry
        )
        self.refused = Counter(
            "keel_ingest_signatures_refused", "Webhooks whose signature or time did not verify", ["source"],
            registry=self.registry,
        )  # fmt: skip
        self.produce = Histogram(
            "keel_ingest_produce_seconds", "From the send to the broker's acknowledgement", ["source"],
            registry=self.registry,
        )  # fmt: skip


class Ingest:
    def __init__(
        self,
        routes: Mapping[str, Route],
        catalogue: Catalogue,
        send: Send,
        *,
        produce_timeout_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._routes, self._catalogue, self._send = routes, catalogue, send
        self._timeout_s, self._clock = produce_timeout_s, clock
        self.metrics = IngestMetrics()
        now = time.monotonic()
        self._limits = {name: RequestBucket(r.source.requests_per_minute, now=now) for name, r in routes.items()}

    def build_app(self) -> web.Application:
        largest = max((r.source.max_body_bytes for r in self._routes.values()), default=1024)
        app = web.Application(client_max_size=largest + 1)
        app.router.add_post("/ingest/{source}", self._ingest)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sources": sorted(self._routes)})

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), content_type="text/plain")

    async def _ingest(self, request: web.Request) -> web.Response:
        name = request.match_info["source"]
        route = self._routes.get(name)
        if route is None:
            return self._answer("-", 404, {"error": "no such source"})
        return await self._take(route, request)

    async def _take(self, route: Route, request: web.Request) -> web.Response:
        source = route.source
        if (request.content_length or 0) > source.max_body_bytes:
            return self._answer(source.name, 413, {"error": f"the body is over {source.max_body_bytes} bytes"})
        body = await _read(request, source.max_body_bytes)
        if body is None:
            return self._answer(source.name, 413, {"error": f"the body is over {source.max_body_bytes} bytes"})
        wait_s = self._limits[source.name].take(time.monotonic())
        if wait_s > 0:
            retry = {"Retry-After": str(math.ceil(wait_s))}
            return self._answer(source.name, 429, {"error": "too many requests"}, headers=retry)
        try:
            verify(source.signature.scheme, dict(request.headers), body, route.secret,
                   now_s=self._clock(), tolerance_s=source.tolerance_s)  # fmt: skip
        except SignatureRefused as exc:
            self.metrics.refused.labels(source.name).inc()
            return self._answer(source.name, 401, {"error": f"signature refused: {exc}"})
        try:
            event = source.event(body, dict(request.headers))
        except WebhookRefused as exc:
            return self._answer(source.name, 400, {"error": str(exc)})
        record = OutRecord(route.topic, event.business_key.encode(), encode_request(self._catalogue, event),
                           ((H_EVENT_ID, event.event_id.encode()),))  # fmt: skip
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._send([record])
        except Exception as exc:  # any failure to write: the sender must send it again
            log.warning("ingest %s: writing %s failed: %r", source.name, event.event_id, exc)
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            return self._answer(
                source.name, 503, {"error": "the event could not be written; send it again"}, headers=headers
            )
        self.metrics.produce.labels(source.name).observe(time.perf_counter() - started)
        return self._answer(source.name, 202, {"event_id": event.event_id}, event_id=event.event_id)

    def _answer(
        self,
        source: str,
        status: int,
        body: dict[str, str],
        *,
        headers: dict[str, str] | None = None,
        event_id: str = "-",
    ) -> web.Response:
        self.metrics.requests.labels(source, str(status)).inc()
        log.info("ingest source=%s status=%d event_id=%s", source, status, event_id)
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


async def _read(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it is over ``limit`` (read no further)."""
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
