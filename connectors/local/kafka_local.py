"""A single-node Apache Kafka (KRaft) on loopback, run from the jars Maven resolves.

``start`` formats the storage on first use, launches the broker outside the calling process (it outlives
the command that started it) and waits until it answers; ``status``, ``stop`` and ``wipe`` find it again
through a pid file in the state dir. A pid is only trusted while that process's command line names this
state dir's server.properties, so a stale pid file never makes us signal an unrelated process.
The ``keel kafka`` command line is connectors/local/kafka_cli.py.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
import os
import secrets
import shutil
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from connectors.local.daemon import (
    LOOPBACK,
    TAIL_LINES,
    Daemon,
    DaemonError,
    launch,
    locked,
    port_in_use,
    run_sync,
    tail,
)
from connectors.local.kafka_secure import OAuthValidation, SecureFiles, secure_setup, write_private
from streams.core.errors import ConfigError
from streams.core.kafka_client import ClientConfig, plaintext
from streams.core.settings import REPO_ROOT

DEFAULT_DEPLOY_DIR = REPO_ROOT / "deploy" / "kafka"
_LOCK_FILE = "start.lock"
# Everything start() may create in a state dir; wipe() refuses to delete a folder holding anything else.
_STATE_ENTRIES = frozenset({"data", "logs", "server.properties", "kafka.pid", _LOCK_FILE, "tls", "secrets"})

T = TypeVar("T")


class LocalKafkaError(DaemonError):
    """The local broker could not be set up, started or stopped."""

    reason = "local_kafka_failed"


class KafkaToolMissing(LocalKafkaError):
    reason = "local_kafka_tool_missing"


class KafkaJarsUnavailable(LocalKafkaError):
    reason = "local_kafka_jars_unavailable"


class KafkaPortInUse(LocalKafkaError):
    reason = "local_kafka_port_in_use"


class KafkaStartFailed(LocalKafkaError):
    reason = "local_kafka_start_failed"


class KafkaStillRunning(LocalKafkaError):
    reason = "local_kafka_running"


@dataclass(frozen=True, init=False)
class LocalKafka:
    """Where and how one local broker runs. Everything it writes lives under ``state_dir``."""

    port: int
    controller_port: int
    state_dir: Path
    deploy_dir: Path
    heap_mb: int
    secure: bool  # SASL_SSL, SCRAM users, ACLs (connectors/local/kafka_secure.py)
    users: tuple[str, ...]  # SCRAM users besides admin, created when the storage is formatted
    oauth: OAuthValidation | None  # secured only: also OAUTHBEARER, tokens validated against a JWKS

    def __init__(
        self,
        *,
        port: int = 9092,
        controller_port: int | None = None,
        state_dir: Path | None = None,
        deploy_dir: Path = DEFAULT_DEPLOY_DIR,
        heap_mb: int = 512,
        secure: bool = False,
        users: tuple[str, ...] = (),
        oauth: OAuthValidation | None = None,
    ) -> None:
        controller_port = port + 1 if controller_port is None else controller_port
        if not (0 < port < 65536 and 0 < controller_port < 65536) or port == controller_port:
            raise ConfigError(f"need two different TCP ports, got {port} and {controller_port}")
        if heap_mb < 128:
            raise ConfigError(f"heap_mb={heap_mb} is too small for a Kafka broker (at least 128)")
        if oauth is not None and not secure:
            raise ConfigError("OAUTHBEARER is offered only by the secured broker (secure=True)")
        state = (REPO_ROOT / ".keel" / f"kafka-{port}" if state_dir is None else state_dir).resolve()
        fields = {"port": port, "state_dir": state, "deploy_dir": deploy_dir.resolve(), "users": tuple(users),
                  "controller_port": controller_port, "heap_mb": heap_mb, "secure": secure, "oauth": oauth}  # fmt: skip
        for name, value in fields.items():  # a frozen dataclass with a constructor of its own
            object.__setattr__(self, name, value)

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def secure_files(self) -> SecureFiles:
        return SecureFiles(self.state_dir)

    @property
    def client(self) -> ClientConfig:
        """How Keel's tooling reaches this broker: plaintext, or as ``admin`` over SASL_SSL."""
        return self.secure_files.client(self.bootstrap) if self.secure else plaintext(self.bootstrap)

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"

    @property
    def console_log(self) -> Path:
        return self.log_dir / "console.log"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "server.properties"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "kafka.pid"

    @property
    def daemon(self) -> Daemon:
        return Daemon("broker", self.pid_file, lambda args: _is_broker_command(self, args))


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    ready: bool
    data_dir: Path
    log_file: Path


# --- pure pieces ---------------------------------------------------------------------------------


def render_server_properties(template: str, cfg: LocalKafka) -> str:
    values = {"port": cfg.port, "controller_port": cfg.controller_port, "data_dir": cfg.data_dir}
    return string.Template(template).substitute(values)


def new_cluster_id() -> str:
    """A cluster id as Kafka's ``Uuid.randomUuid`` makes it: 16 random bytes, URL-safe base64."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka's command-line tools would read it as an option
            return cluster_id


def _errors(path: Path, *, count: int = 3) -> str:
    """The last ERROR/FATAL entries of a broker log, each with its exception and root cause: what the
    stack traces after them push out of the tail."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    entries: list[str] = []
    for index, line in enumerate(lines):
        if not (line.startswith("[") and ("] ERROR " in line or "] FATAL " in line)):
            continue
        trace = list(itertools.takewhile(lambda later: not later.startswith("["), lines[index + 1 :]))
        causes = [later.strip() for later in trace if later.lstrip().startswith("Caused by:")]
        entries.append("\n  ".join([line, *trace[:1], *causes[-1:]]))
    return "\n".join(entries[-count:])


# --- tools and jars ------------------------------------------------------------------------------


def _tool(name: str, *, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise KafkaToolMissing(f"`{name}` is not on PATH; {hint}")
    return path


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    return _tool("java", hint="install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)")


def _jars_fresh(lib: Path, pom: Path) -> bool:
    return lib.is_dir() and any(lib.glob("*.jar")) and lib.stat().st_mtime >= pom.stat().st_mtime


def ensure_jars(deploy_dir: Path = DEFAULT_DEPLOY_DIR) -> Path:
    """The folder of Kafka's jars, resolved by Maven when missing or older than pom.xml."""
    pom = deploy_dir / "pom.xml"
    lib = deploy_dir / "target" / "lib"
    if not pom.is_file():
        raise KafkaJarsUnavailable(f"{pom} does not exist")
    if _jars_fresh(lib, pom):
        return lib
    mvn = _tool("mvn", hint="install Apache Maven 3.8+ (Debian: apt-get install maven)")
    with locked(deploy_dir / "target" / "resolve.lock"):
        if _jars_fresh(lib, pom):  # resolved by a concurrent start while we waited
            return lib
        # Resolve into a fresh folder and swap it in, so a failed run never leaves a half-filled lib/
        # and jars of an older Kafka version never stay on the classpath.
        partial = lib.with_name("lib.partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run_maven(mvn, pom, partial)
        shutil.rmtree(lib, ignore_errors=True)
        partial.rename(lib)
    return lib


def _run_maven(mvn: str, pom: Path, output_dir: Path) -> None:
    command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={output_dir}"]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    except subprocess.TimeoutExpired as exc:
        raise KafkaJarsUnavailable("Maven did not finish resolving the Kafka jars in 900 s") from exc
    if done.returncode != 0 or not any(output_dir.glob("*.jar")):
        output = "\n".join((done.stdout + done.stderr).splitlines()[-TAIL_LINES:])
        raise KafkaJarsUnavailable(
            f"Maven could not resolve the Kafka jars from {pom} (exit {done.returncode}):\n{output}"
        )


# --- processes and ports -------------------------------------------------------------------------


def _is_broker_command(cfg: LocalKafka, args: list[str]) -> bool:
    # argv[0] must be java: the shell that launches it briefly has the same arguments.
    return bool(args) and Path(args[0]).name == "java" and "kafka.Kafka" in args and str(cfg.config_file) in args


# --- readiness -----------------------------------------------------------------------------------


async def probe(kafka: ClientConfig, *, timeout_s: float = 2.0) -> bool:
    """Whether the broker ``kafka`` names answers a metadata request and names an active controller."""
    admin = AIOKafkaAdminClient(
        **kafka.kwargs(), client_id="keel-kafka-local", request_timeout_ms=int(timeout_s * 1000)
    )
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)  # "unable to connect" is the expected answer while it starts
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
        # An unfenced broker is listed only once the controller has accepted its registration.
        return cluster["controller_id"] >= 0 and len(cluster["brokers"]) > 0
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()
        client_log.setLevel(level)


async def _wait_until_ready(cfg: LocalKafka, pid: int, *, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not cfg.daemon.owns(pid):
            raise KafkaStartFailed(
                f"the broker (pid {pid}) exited while starting.\n{_errors(cfg.server_log)}\n"
                f"--- {cfg.server_log} ---\n{tail(cfg.server_log)}\n"
                f"--- {cfg.console_log} ---\n{tail(cfg.console_log)}"
            )
        if await probe(cfg.client, timeout_s=min(3.0, max(0.5, deadline - time.monotonic()))):
            return
        await asyncio.sleep(0.5)
    raise KafkaStartFailed(
        f"the broker (pid {pid}) did not become ready within {wait_s:.0f} s.\n"
        f"--- {cfg.server_log} ---\n{tail(cfg.server_log)}"
    )


# --- start, status, stop, wipe -------------------------------------------------------------------


def _format_storage(cfg: LocalKafka, *, java: str, lib: Path, scram: list[str]) -> None:
    if (cfg.data_dir / "meta.properties").exists():
        return
    command = [java, "-cp", f"{lib}/*", *_logging_options(cfg), "kafka.tools.StorageTool", "format",
               "--config", str(cfg.config_file), "--cluster-id", new_cluster_id(), *scram]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-TAIL_LINES:])
        raise KafkaStartFailed(f"formatting {cfg.data_dir} failed (exit {done.returncode}):\n{output}")


def _logging_options(cfg: LocalKafka) -> list[str]:
    return [f"-Dlog4j2.configurationFile={cfg.deploy_dir / 'log4j2.properties'}", f"-Dkafka.logs.dir={cfg.log_dir}"]


def _launch(cfg: LocalKafka, *, java: str, lib: Path) -> int:
    oauth = cfg.oauth.jvm_options() if cfg.oauth is not None else []
    command = [java, f"-Xms{cfg.heap_mb}m", f"-Xmx{cfg.heap_mb}m", "-XX:+ExitOnOutOfMemoryError",
               "-Djava.awt.headless=true", *_logging_options(cfg), *oauth, "-cp", f"{lib}/*",
               "kafka.Kafka", str(cfg.config_file)]  # fmt: skip
    return launch(command, log_file=cfg.console_log, cwd=cfg.state_dir)


def _check_ports_free(cfg: LocalKafka) -> None:
    for port in (cfg.port, cfg.controller_port):
        if port_in_use(port):
            raise KafkaPortInUse(
                f"{LOOPBACK}:{port} is already in use by a program that is not the broker of "
                f"{cfg.state_dir} (or by a connection closed in the last minute); stop it or choose "
                "another port (--port)"
            )


def start(cfg: LocalKafka, *, wait_s: float = 90) -> None:
    """Start the broker unless it already runs, and return once it is ready. Idempotent."""
    lib = ensure_jars(cfg.deploy_dir)
    java = _java()
    with locked(cfg.state_dir / _LOCK_FILE):
        pid = cfg.daemon.find_pid()
        launched = pid is None
        if pid is None:
            _check_ports_free(cfg)
            cfg.log_dir.mkdir(parents=True, exist_ok=True)
            template = (cfg.deploy_dir / "server.properties").read_text()
            properties, scram = render_server_properties(template, cfg), list[str]()
            if cfg.secure:
                ports = (cfg.port, cfg.controller_port)
                overlay, scram = secure_setup(cfg.secure_files, list(cfg.users), *ports, oauth=cfg.oauth)
                properties += overlay
            write_private(cfg.config_file, properties.encode())  # secured, it holds the admin's password
            _format_storage(cfg, java=java, lib=lib, scram=scram)
            pid = _launch(cfg, java=java, lib=lib)
        cfg.pid_file.write_text(f"{pid}\n")
        try:
            run_sync(lambda: _wait_until_ready(cfg, pid, wait_s=wait_s))
        except KafkaStartFailed:
            if launched:
                stop(cfg, timeout_s=10)  # leave nothing half-started behind
            raise


def status(cfg: LocalKafka, *, timeout_s: float = 2.0) -> BrokerStatus:
    pid = cfg.daemon.find_pid()
    ready = pid is not None and run_sync(lambda: probe(cfg.client, timeout_s=timeout_s))
    return BrokerStatus(
        running=pid is not None, pid=pid, bootstrap=cfg.bootstrap, ready=ready,
        data_dir=cfg.data_dir, log_file=cfg.server_log,
    )  # fmt: skip


def stop(cfg: LocalKafka, *, timeout_s: float = 30, force: bool = False) -> bool:
    """Stop the broker (SIGTERM, or SIGKILL with ``force``; SIGKILL after ``timeout_s``).

    Returns whether a broker was running.
    """
    return cfg.daemon.stop(timeout_s=timeout_s, force=force)


def wipe(cfg: LocalKafka) -> bool:
    """Delete the state dir (data, logs, config). Returns whether there was one."""
    if cfg.daemon.find_pid() is not None:
        raise KafkaStillRunning(f"the broker of {cfg.state_dir} is running; stop it before wiping")
    if not cfg.state_dir.exists():
        return False
    foreign = sorted(entry.name for entry in cfg.state_dir.iterdir() if entry.name not in _STATE_ENTRIES)
    if foreign:
        raise LocalKafkaError(f"refusing to wipe {cfg.state_dir}: it also holds {', '.join(foreign)}")
    shutil.rmtree(cfg.state_dir)
    return True
