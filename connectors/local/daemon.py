"""Background servers Keel starts for local use (the Kafka broker, the llama.cpp model server).

A daemon is launched outside the calling process (it outlives the command that started it) and found
again through a pid file. A pid is only trusted while that process's command line still matches the
daemon's own, so a stale pid file never makes us signal an unrelated process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from streams.core.errors import KeelError

LOOPBACK = "127.0.0.1"
TAIL_LINES = 30
T = TypeVar("T")


class DaemonError(KeelError):
    reason = "local_daemon_failed"


@dataclass(frozen=True)
class Daemon:
    """How to recognise one daemon: its pid file and a predicate over a process's argv."""

    name: str
    pid_file: Path
    matches: Callable[[list[str]], bool]

    def find_pid(self) -> int | None:
        """The pid of the running daemon, from the pid file or, if that was lost, from /proc."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            pid = int(self.pid_file.read_text().strip())
            if self.owns(pid):
                return pid
        proc = Path("/proc")
        if proc.is_dir():
            for entry in proc.iterdir():
                if entry.name.isdigit() and self.owns(int(entry.name)):
                    return int(entry.name)
        return None

    def owns(self, pid: int) -> bool:
        args = command_line(pid)
        return bool(args) and self.matches(args)

    def has_exited(self, pid: int) -> bool:
        """Whether ``pid`` is gone, a zombie, or reused by another program.

        Its command line alone cannot tell: the kernel empties it while the process still holds its ports.
        """
        if not Path("/proc").is_dir():
            return not self.owns(pid)
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            threads = len(os.listdir(f"/proc/{pid}/task"))
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):  # a JVM's main thread turns zombie while other threads still hold sockets
            return threads <= 1
        args = command_line(pid)
        return bool(args) and not self.matches(args)

    def wait_for_exit(self, pid: int, *, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.has_exited(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self, *, timeout_s: float = 30, force: bool = False) -> bool:
        """SIGTERM (or SIGKILL with ``force``; SIGKILL after ``timeout_s``). Returns whether it was running."""
        pid = self.find_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        send_signal(pid, signal.SIGKILL if force else signal.SIGTERM)
        if not self.wait_for_exit(pid, timeout_s=timeout_s) and self.owns(pid):
            send_signal(pid, signal.SIGKILL)
            if not self.wait_for_exit(pid, timeout_s=10):
                raise DaemonError(f"the {self.name} (pid {pid}) is still running after SIGKILL")
        self.pid_file.unlink(missing_ok=True)
        return True


def command_line(pid: int) -> list[str]:
    proc = Path("/proc")
    if proc.is_dir():
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return []  # gone (a zombie's is empty too)
        return raw.decode(errors="replace").split("\0")[:-1]
    ps_command = ["ps", "-o", "command=", "-p", str(pid)]  # no /proc (macOS): ask ps
    return subprocess.run(ps_command, capture_output=True, text=True, check=False).stdout.split()  # noqa: S603


def launch(command: list[str], *, log_file: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start ``command`` detached, output to ``log_file``; return its pid.

    A shell in a new session starts it in the background, prints its pid and exits, so the daemon is
    adopted by init instead of being our child: it survives this process, and when it exits it leaves
    no zombie behind in a long-lived caller.
    """
    script = 'log=$1; shift; "$@" </dev/null >"$log" 2>&1 & echo $!'
    done = subprocess.run(  # noqa: S603
        ["/bin/sh", "-c", script, "sh", str(log_file), *command],
        capture_output=True, text=True, timeout=30, check=False, start_new_session=True, cwd=cwd, env=env,
    )  # fmt: skip
    if done.returncode != 0 or not done.stdout.strip().isdigit():
        raise DaemonError(f"could not launch {command[0]} (exit {done.returncode}): {done.stderr.strip()}")
    return int(done.stdout.strip())


def send_signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it exited on its own in the meantime
    except PermissionError as exc:
        raise DaemonError(f"not allowed to signal pid {pid}") from exc


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
        probe_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            probe_socket.bind((LOOPBACK, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise DaemonError(f"cannot bind {LOOPBACK}:{port}: {exc}") from exc
    return False


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def tail(path: Path, *, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from sync code, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
