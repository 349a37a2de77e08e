"""`keel kafka start|status|stop`: the local broker's command line (the broker: connectors/local/kafka_local.py),
also reachable as ``python -m connectors.local.kafka_cli``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from connectors.local.kafka_local import LocalKafka, start, status, stop, wipe
from streams.core.errors import KeelError


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--port", type=int, default=9092, help="client port (controller: port+1)")
    common.add_argument("--state-dir", type=Path, default=None, help="default: <repo>/.keel/kafka-<port>")
    common.add_argument(
        "--secure", action="store_true", help="SASL_SSL + SCRAM users + ACLs (connectors/local/kafka_secure.py)"
    )
    parser = argparse.ArgumentParser(prog="keel kafka", description="A local single-node Kafka broker.")
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", parents=[common], help="start and wait until ready")
    start_cmd.add_argument("--wipe", action="store_true", help="delete the old state first")
    start_cmd.add_argument("--wait-s", type=float, default=90.0, help="readiness timeout")
    start_cmd.add_argument(
        "--user", action="append", default=[], help="--secure: a SCRAM user to create besides admin (repeatable)"
    )
    commands.add_parser("status", parents=[common], help="exit 0 when running, 3 when not")
    stop_cmd = commands.add_parser("stop", parents=[common], help="stop gracefully")
    stop_cmd.add_argument("--force", action="store_true", help="SIGKILL instead of SIGTERM")
    stop_cmd.add_argument("--wipe", action="store_true", help="then delete data, logs and config")
    return parser


def _start_command(cfg: LocalKafka, args: argparse.Namespace) -> int:
    if args.wipe and wipe(cfg):
        print(f"wiped {cfg.state_dir}")
    if cfg.daemon.find_pid() is None:
        print(f"starting Kafka on {cfg.bootstrap} (state in {cfg.state_dir}) ...", flush=True)
    began = time.monotonic()
    start(cfg, wait_s=args.wait_s)
    print(f"Kafka is ready at {cfg.bootstrap} (pid {cfg.daemon.find_pid()}, {time.monotonic() - began:.1f} s)")
    print(f"log: {cfg.server_log}")
    if cfg.secure:
        files = cfg.secure_files
        print(f"secured: SASL_SSL, {', '.join(files.users())} (passwords in {files.secrets_dir}); as admin:")
        for name, value in files.environment("admin").items():
            print(f"  export {name}={value}")
    return 0


def _status_command(cfg: LocalKafka, _args: argparse.Namespace) -> int:
    facts = status(cfg)
    yes_no = {True: "yes", False: "no"}
    print(f"running: {yes_no[facts.running]}")
    print(f"ready: {yes_no[facts.ready]}")
    print(f"pid: {facts.pid if facts.pid is not None else '-'}")
    print(f"bootstrap: {facts.bootstrap}")
    print(f"data_dir: {facts.data_dir}")
    print(f"log: {facts.log_file}")
    return 0 if facts.running else 3


def _stop_command(cfg: LocalKafka, args: argparse.Namespace) -> int:
    pid = cfg.daemon.find_pid()
    stopped = stop(cfg, force=args.force)
    print(f"stopped Kafka (pid {pid})" if stopped else f"Kafka was not running on {cfg.bootstrap}")
    if args.wipe and wipe(cfg):
        print(f"wiped {cfg.state_dir}")
    return 0


_COMMANDS: dict[str, Callable[[LocalKafka, argparse.Namespace], int]] = {
    "start": _start_command,
    "status": _status_command,
    "stop": _stop_command,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Readiness probes expect refused connections; aiokafka would log each one as an error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        cfg = LocalKafka(
            port=args.port, state_dir=args.state_dir, secure=args.secure, users=tuple(getattr(args, "user", ()))
        )
        return _COMMANDS[args.command](cfg, args)
    except KeelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
