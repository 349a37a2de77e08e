"""`keel review serve`: the review service, the applier and the web server, in one process.

Start order matters: the queue is loaded to the end of its topics before the web server takes a
request (a reviewer never sees a half-loaded queue) and before the applier runs (it asks the queue which
decision on an item came first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from streams.agent.definition import Agent
from streams.apps import faust_app
from streams.apps.metrics import EXPOSITION_TYPE
from streams.apps.registry.client_mode import load_schemas
from streams.apps.review.applier import ReviewApplier
from streams.apps.review.kafka_service import KafkaReviewService
from streams.apps.review.metrics import ReviewMetrics
from streams.apps.review.sla_watch import watch_slas
from streams.contracts.emit import Emitter
from streams.contracts.topics import topic_plan
from streams.core.ports.clock import SystemClock
from streams.core.review_item import ReviewService
from streams.core.settings import Settings
from streams.cost.pricing import load_pricing
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import client_config
from streams.kafka.skipped import SkippedRecords
from streams.review.sessions import SessionTable
from streams.review.users import UserFile
from streams.review.web import app as review_web

log = logging.getLogger(__name__)
METRICS_KEY = web.AppKey("keel.review.metrics", ReviewMetrics)


def build_web_app(service: ReviewService, settings: Settings) -> web.Application:
    """The web UI and JSON API (streams/review/web/app.py) for the users of the users file. ``running`` adds
    ``/metrics``, which is open like every Keel process's metrics page (counts only, no item data) so
    Prometheus can scrape it."""
    return review_web.build_web_app(
        service,
        UserFile(settings.review_users_file),
        sessions=SessionTable(max_age_s=settings.review_session_max_age_s),
        secure_cookies=settings.review_secure_cookies,
        trusted_proxies=settings.review_trusted_proxies,
    )


@dataclass
class ReviewProcess:
    agents: list[Agent]
    service: KafkaReviewService
    applier: ReviewApplier
    metrics: ReviewMetrics


def build_process(settings: Settings) -> ReviewProcess:
    catalogue, agents = load_schemas(settings)
    emitter = Emitter(catalogue, settings, agents, pricing=load_pricing(settings.pricing_file))
    skipped = SkippedRecords()
    service = KafkaReviewService(settings, catalogue, agents, skipped=skipped)
    metrics = ReviewMetrics([agent.name for agent in agents], service.queue.depths, skipped=skipped)
    applier = ReviewApplier(settings, service, emitter, metrics)
    return ReviewProcess(agents, service, applier, metrics)


@dataclass(frozen=True, slots=True)
class Running:
    port: int  # the web server's
    applier: asyncio.Task[None]  # ends only by failing


@contextlib.asynccontextmanager
async def running(settings: Settings, process: ReviewProcess, *, web_port: int | None = None) -> AsyncIterator[Running]:
    """The service loaded, the applier running and the web server listening. The feed, the applier and
    the SLA watch run as long as the process: one that fails ends it (exit 70, crash-only), so that
    its supervisor starts it again rather than leaving reviewers a queue that no longer moves."""
    await process.service.start()
    applier = asyncio.create_task(process.applier.run(), name="review-applier")
    slas = asyncio.create_task(
        watch_slas(settings, process.service.catalogue, process.agents, process.service.queue, SystemClock()),
        name="review-slas",
    )
    tasks = [applier, slas, process.service.feed.following]
    watched = [(task, faust_app.exit_when_failed(f"the {task.get_name()} task failed")) for task in tasks if task]
    for task, exit_on_failure in watched:
        task.add_done_callback(exit_on_failure)
    app = build_web_app(process.service, settings)
    app[METRICS_KEY] = process.metrics
    app.router.add_get("/metrics", _metrics, name=review_web.METRICS_ROUTE)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        port = settings.review_web_port if web_port is None else web_port
        await web.TCPSite(runner, settings.review_web_host, port).start()
        yield Running(int(runner.addresses[0][1]), applier)  # port 0: the one the system chose
    finally:
        for task, exit_on_failure in watched:  # stopping: whatever they end with now is not a failure to exit on
            task.remove_done_callback(exit_on_failure)
        await runner.cleanup()
        for task in (applier, slas):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await process.service.stop()


async def serve(settings: Settings) -> None:
    """`keel review serve`: until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    process = build_process(settings)
    await ensure_topics(client_config(settings), topic_plan(process.agents, settings))  # it may start first
    async with running(settings, process) as served:
        log.warning("review service on http://%s:%d/ (metrics at /metrics)", settings.review_web_host, served.port)
        await stop.wait()  # a failing feed, applier or SLA watch ends the process before (see ``running``)


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": EXPOSITION_TYPE})
