"""The simulator's command line: ``python -m connectors.simulator --port 8090 --p-5xx 0.3 --seed 7``
(every ``SimulatorConfig`` field is a flag)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from connectors.serving import serve_until_stopped
from connectors.simulator.server import SimulatorConfig, start_simulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.simulator",
        description="OpenAI-compatible provider SIMULATOR (not a model) for tests and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    for name, field in SimulatorConfig.model_fields.items():
        default = field.get_default(call_default_factory=True)
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(default), default=default)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    try:
        config = SimulatorConfig.model_validate(args)
    except ValidationError as exc:
        sys.stderr.write(f"invalid simulator settings: {exc}\n")
        return 2
    try:
        asyncio.run(
            serve_until_stopped(functools.partial(start_simulator, config, host=host, port=port), "keel-simulator")
        )
    except OSError as exc:
        sys.stderr.write(f"keel-simulator cannot listen on {host}:{port}: {exc}\n")
        return 1
    return 0
