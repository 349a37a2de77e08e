"""A server on loopback in a thread of its own, for tests that drive it synchronously (a browser)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web


class LoopbackServer:
    """A server started by ``serve`` (an async context manager giving its port on 127.0.0.1), run in a
    thread and event loop of its own while the test drives a browser."""

    def __init__(self, serve: Callable[[], AbstractAsyncContextManager[int]], *, timeout_s: float = 30) -> None:
        self._serving = serve()
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="review-web", daemon=True)
        self.base_url = ""

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        port: int = self._run(self._serving.__aenter__())
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *_exc: object) -> None:
        self._run(self._serving.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=self._timeout_s)


def app_server(app: web.Application) -> LoopbackServer:
    """``app`` alone, on a port the system picks."""

    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[int]:
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            yield int(runner.addresses[0][1])
        finally:
            await runner.cleanup()

    return LoopbackServer(serve)
