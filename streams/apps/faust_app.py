"""What every Keel faust app shares: its settings, its `/metrics` page and how it is started.

`keel worker` (streams/apps/worker/shell.py) and `keel aggregate` (streams/apps/aggregator/usage_stream.py) are
faust apps of their own, with their own consumer groups; both talk to the same broker the same way. The aggregator
reads through faust agents and tables; the worker reads with Keel's own consumer (streams/kafka/intake.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable
from typing import Any, NoReturn

import faust
from faust.app.base import BootStrategy
from faust.auth import Credentials, OAuthCredentials, SASLCredentials, SSLCredentials

from streams.apps.metrics import EXPOSITION_TYPE
from streams.core.kafka_client import ClientConfig
from streams.core.settings import Settings
from streams.kafka import kafka_records
from streams.kafka.connection import client_config

kafka_records.install()  # a header name that is not UTF-8 stops no reader (streams/kafka/kafka_records.py)

log = logging.getLogger(__name__)


def new_app(settings: Settings, *, app_id: str, web_port: int, consumes: bool = True) -> faust.App:
    """Topics are created by Keel (never declared by faust), the web server listens on loopback only
    (``web_port`` 0: none). An app that does not ``consume`` (the worker, which reads with Keel's own
    consumer: streams/kafka/intake.py) starts no faust consumer or producer: its web server and tasks only."""
    kafka = client_config(settings)
    app = faust.App(
        app_id,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(kafka),
        key_serializer="raw",
        value_serializer="raw",
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        datadir=str(settings.state_dir / "faust" / app_id),  # not the working directory
        producer_acks=-1,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        web_enabled=web_port > 0,
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
    )
    if consumes:
        _bound_fetch_wait(app, settings.fetch_max_wait_ms)
        _freeze_at_first_assignment(app)
    else:
        app.boot_strategy = BootStrategy(app, enable_kafka=False)
    return app


def broker_credentials(kafka: ClientConfig) -> Credentials | None:
    """faust's form of the process's client settings (the same kwargs reach aiokafka through faust's
    driver: faust/transport/drivers/aiokafka.py ``credentials_to_aiokafka_auth``)."""
    kwargs = kafka.kwargs()
    mechanism, context = kwargs.get("sasl_mechanism"), kwargs.get("ssl_context")
    if mechanism == "OAUTHBEARER":
        return OAuthCredentials(oauth_cb=kwargs["sasl_oauth_token_provider"], ssl_context=context)
    if mechanism is not None:
        return SASLCredentials(
            username=kwargs["sasl_plain_username"],
            password=kwargs["sasl_plain_password"],
            ssl_context=context,
            mechanism=mechanism,
        )
    return SSLCredentials(context) if context is not None else None


def _bound_fetch_wait(app: faust.App, max_wait_ms: int) -> None:
    """faust builds its consumer with a fetch wait of 1.5 s, and aiokafka keeps one fetch in flight per
    broker. When every busy partition still holds records faust has not taken yet (more than 0.1 s
    after they came), that fetch asks only for the quiet ones (retry tiers, parked): the broker holds
    it for the whole wait, and no busy partition is fetched meanwhile. A short wait bounds that stall
    (it held up to 1.5 s of events at a time in `make bench`); an idle worker fetches more often
    instead. The consumer exists once partitions are assigned; the fetcher reads the wait per request."""

    async def assigned(_sender: Any, _assigned: set[Any], **_: Any) -> None:
        if bound_fetch_wait(app.consumer, max_wait_ms):
            log.info("the consumer's fetch wait is %d ms", max_wait_ms)
        else:
            log.warning("cannot bound the consumer's fetch wait (faust or aiokafka changed): it stays at 1.5 s")

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]  # mode types want a positional-only sender


def bound_fetch_wait(consumer: Any, max_wait_ms: int) -> bool:
    """Set the wait on faust's started aiokafka consumer; False if it is not where faust 0.15 keeps it."""
    fetcher: Any = getattr(getattr(getattr(consumer, "_thread", None), "_consumer", None), "_fetcher", None)
    if not hasattr(fetcher, "_fetch_max_wait_ms"):
        return False
    fetcher._fetch_max_wait_ms = max_wait_ms
    return True


def freeze_start_up_heap() -> None:
    """Once, when the app has started (at its first assignment), what is alive (modules, schemas, faust
    and aiokafka machinery) is put out of the cyclic garbage collector's reach: every full collection
    walked it all, 35-50 ms with the event loop stopped, every 2 s at 70% load in `make bench` (its
    p99 overhead). A collection first, so that no garbage is frozen; later objects are collected as
    before (a frozen one that later ends in a reference cycle stays: a bounded, one-off amount)."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def _freeze_at_first_assignment(app: faust.App) -> None:
    async def assigned(_sender: Any, _assigned: set[Any], **_: Any) -> None:
        freeze_start_up_heap()

    app.on_partitions_assigned.connect(assigned)  # type: ignore[arg-type]  # mode types want a positional-only sender


def serve_metrics(app: faust.App, exposition: Callable[[], bytes]) -> None:
    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        """Prometheus metrics (streams/apps/metrics.py)."""
        return web.bytes(exposition(), headers={"Content-Type": EXPOSITION_TYPE})


def run(app: faust.App, settings: Settings, *, what: str) -> NoReturn:
    """Hand over to faust until stopped."""
    (settings.state_dir / "faust").mkdir(parents=True, exist_ok=True)
    log.warning("keel %s starting on %s", what, client_config(settings).describe())
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per model call is too much at info
    logging.getLogger("aiokafka").setLevel(logging.INFO)  # its per-record debug lines cost ~10% of a worker's CPU
    logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)  # store loads
    worker.execute_from_commandline()


def exit_for_restart(what: str, exc: BaseException) -> NoReturn:
    """Crash-only, for the worker and the aggregator alike: a restarted worker is redelivered every
    unacked event, and the outcome store keeps that from costing a second model call. Carrying on
    instead could commit past the event (the events after it would still be acked), or leave a
    crashed app running idle."""
    log.critical("%s: %r; exiting so that a supervisor restarts the process", what, exc, exc_info=exc)
    logging.shutdown()
    os._exit(70)


def exit_on_crash(app: faust.App) -> None:
    """A crashed app (an agent, a task or faust itself failed) exits 70 like every crash-only failure,
    once faust has crashed it."""
    crash = app.crash

    async def crash_and_exit(reason: BaseException) -> None:
        await crash(reason)
        exit_for_restart("the faust app crashed", reason)

    app.crash = crash_and_exit  # type: ignore[method-assign]


def exit_when_failed(what: str) -> Callable[[asyncio.Task[Any]], None]:
    """A done callback for a background task that runs as long as its process: when the task ends with
    an exception, so does the process (``exit_for_restart``), rather than going on without it. A
    cancelled task (the process stopping) or one that returned is left alone."""

    def done(task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            exit_for_restart(what, exc)

    return done
