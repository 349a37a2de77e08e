"""Child processes of a local stack: the provider simulator, the example CRM and the worker (demo, `make
run`, tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from streams.core.errors import KeelError
from streams.core.kafka_security import security_environment
from streams.core.settings import REPO_ROOT, Settings


class ServiceDidNotStart(KeelError):
    reason = "service_did_not_start"


@contextlib.contextmanager
def simulator_process(state_dir: Path, *options: str) -> Iterator[str]:
    """Run the provider simulator in a child process; yield its base URL."""
    with _listening("connectors.simulator", state_dir / "logs" / "simulator.log", options) as url:
        yield url


@contextlib.contextmanager
def crm_process(state_dir: Path, token: str) -> Iterator[str]:
    """Run the example CRM (connectors/crm/) in a child process, with ``token`` as its bearer token;
    yield its base URL."""
    with _listening("connectors.crm", state_dir / "logs" / "crm.log", (), {"CRM_API_TOKEN": token}) as url:
        yield url


@contextlib.contextmanager
def _listening(
    module: str, log_path: Path, options: tuple[str, ...], env: dict[str, str] | None = None
) -> Iterator[str]:
    """``python -m module --port 0 ...``, whose first line on stdout ends "listening on <url>"."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", module, "--port", "0", *options]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(  # noqa: S603  (our own module, no shell)
            command, stdout=subprocess.PIPE, stderr=log_file, cwd=REPO_ROOT, env={**os.environ, **(env or {})}
        )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline().decode().strip()
        if "listening on " not in first_line:
            raise ServiceDidNotStart(f"{module} did not start: {first_line!r} (see {log_path})")
        yield first_line.split("listening on ", 1)[1]
    finally:
        terminate(process)


@contextlib.contextmanager
def worker_process(
    settings: Settings, extra_env: dict[str, str], *, command: str = "worker", args: tuple[str, ...] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """``keel worker`` (or another long-running ``keel`` command, e.g. ``aggregate`` or ``review serve``)
    in a child process."""
    log_path = settings.state_dir / "logs" / f"{'-'.join((command, *args))}-{settings.namespace or 'default'}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **security_environment(settings),  # the child connects as these settings do, unless extra_env says
        **extra_env,
        "KEEL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "KEEL_STATE_DIR": str(settings.state_dir),
    }
    if settings.namespace:
        env["KEEL_NAMESPACE"] = settings.namespace
    say(f"starting `keel {' '.join((command, *args))}` (log: {log_path}) ...")
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(  # noqa: S603  (our own command, no shell)
            [sys.executable, "-m", "streams.cli", command, *args],
            env=env,
            stdout=log_file,
            stderr=log_file,
            cwd=REPO_ROOT,
        )
    try:
        yield process
    finally:
        terminate(process)


def terminate(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def say(message: str) -> None:
    print(f"keel: {message}", file=sys.stderr, flush=True)
