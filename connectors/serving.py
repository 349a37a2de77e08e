"""Running one of the connectors' loopback servers (the provider simulator, the example CRM) as a
process: serve until SIGTERM or SIGINT, saying where on the first line of stdout."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol


class Running(Protocol):
    url: str

    async def stop(self) -> None: ...


async def serve_until_stopped(start: Callable[[], Awaitable[Running]], name: str) -> None:
    """Start the server, print ``<name> listening on <url>`` (what streams/cli/local_stack.py waits
    for), and stop it on SIGTERM or SIGINT."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    server = await start()
    sys.stdout.write(f"{name} listening on {server.url}\n")
    sys.stdout.flush()
    try:
        await stopping.wait()
    finally:
        await server.stop()
