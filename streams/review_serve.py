"""`keel review serve`: the review service, the applier and the web server, in one process.

Start order matters: the queue is loaded to the end of its topics before the web server takes a
request (a reviewer never sees a half-loaded queue) and before the applier runs (it asks the queue which
decision on an item came first).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from streams.agents import load_agents
from streams.catalogue import load_catalogue
from streams.emit import Emitter
from streams.pricing import load_pricing
from streams.review import ReviewService
from streams.review_applier import ReviewApplier
from streams.review_metrics import CONTENT_TYPE, ReviewMetrics
from streams.review_service import KafkaReviewService
from streams.settings import Settings

log = logging.getLogger(__name__)
METRICS_KEY = web.AppKey("keel.review.metrics", ReviewMetrics)
SERVICE_KEY = web.AppKey("keel.review.service", KafkaReviewService)


# --- SEAM (branch `reviewweb`) --------------------------------------------------------------------------
# The web UI and JSON API live in streams/review_web.py, written on another branch, as
# ``create_app(service, settings) -> web.Application``. Until it lands, a placeholder page says so.
def build_web_app(service: ReviewService, settings: Settings) -> web.Application:
    try:
        review_web = importlib.import_module("streams.review_web")
    except ModuleNotFoundError:
        return _placeholder_app()
    app: web.Application = review_web.create_app(service, settings)
    return app


def _placeholder_app() -> web.Application:
    async def index(request: web.Request) -> web.Response:
        service = request.app[SERVICE_KEY]
        depths = service.queue.depths()
        lines = [f"{agent}: {depths.get(agent, 0)} pending" for agent in service.agents()]
        return web.Response(text="Keel review service (the web UI is not installed)\n" + "\n".join(lines) + "\n")

    app = web.Application()
    app.router.add_get("/", index)
    return app


@dataclass
class ReviewProcess:
    service: KafkaReviewService
    applier: ReviewApplier
    metrics: ReviewMetrics


def build_process(settings: Settings) -> ReviewProcess:
    catalogue = load_catalogue(settings.schemas_dir)
    agents = load_agents(settings.agents_dir, catalogue, only=settings.agents or None)
    emitter = Emitter(catalogue, settings, agents, pricing=load_pricing(settings.pricing_file))
    service = KafkaReviewService(settings, catalogue, agents)
    metrics = ReviewMetrics([agent.name for agent in agents], service.queue.depths)
    applier = ReviewApplier(settings, service, emitter, metrics)
    return ReviewProcess(service, applier, metrics)


@dataclass(frozen=True, slots=True)
class Running:
    port: int  # the web server's
    applier: asyncio.Task[None]  # ends only by failing


@contextlib.asynccontextmanager
async def running(settings: Settings, process: ReviewProcess, *, web_port: int | None = None) -> AsyncIterator[Running]:
    """The service loaded, the applier running and the web server listening."""
    await process.service.start()
    applier = asyncio.create_task(process.applier.run(), name="review-applier")
    app = build_web_app(process.service, settings)
    app[METRICS_KEY], app[SERVICE_KEY] = process.metrics, process.service
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        port = settings.review_web_port if web_port is None else web_port
        await web.TCPSite(runner, settings.review_web_host, port).start()
        yield Running(int(runner.addresses[0][1]), applier)  # port 0: the one the system chose
    finally:
        await runner.cleanup()
        applier.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await applier
        await process.service.stop()


async def serve(settings: Settings) -> None:
    """`keel review serve`: until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    process = build_process(settings)
    async with running(settings, process) as served:
        log.warning("review service on http://%s:%d/ (metrics at /metrics)", settings.review_web_host, served.port)
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([stopped, served.applier], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if served.applier.done():
            served.applier.result()  # the applier failed: so does the process, and its supervisor restarts it


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
