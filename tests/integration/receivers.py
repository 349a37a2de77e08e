"""Real HTTP receivers on loopback standing in for Slack and a PagerDuty-style webhook: they record every
request and answer with a script of statuses (a 503, a 429 with Retry-After, ...) before accepting."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    body: Any
    headers: dict[str, str]
    status: int  # what it was answered
    at: float  # time.monotonic()


@dataclass
class Receiver:
    url: str
    accept: Answer
    script: list[Answer]  # answered first, in order
    received: list[Received] = field(default_factory=list)

    def accepted(self) -> list[Any]:
        return [r.body for r in self.received if r.status < 300]

    async def wait_for(self, accepted: int, *, wait_s: float = 60) -> list[Any]:
        deadline = time.monotonic() + wait_s
        while len(self.accepted()) < accepted and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return self.accepted()


@contextlib.asynccontextmanager
async def receiver(*script: Answer, accept: Answer | None = None, port: int = 0) -> AsyncIterator[Receiver]:
    state = Receiver("", accept or Answer(200), list(script))

    async def hook(request: web.Request) -> web.Response:
        answer = state.script.pop(0) if state.script else state.accept
        body = orjson.loads(await request.read())
        state.received.append(Received(body, dict(request.headers), answer.status, time.monotonic()))
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, text="ok" if answer.status < 300 else "no", headers=answer.headers)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield state
    finally:
        await runner.cleanup()
