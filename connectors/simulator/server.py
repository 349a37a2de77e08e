"""A provider SIMULATOR: an HTTP server with dialled-in latency and faults that speaks OpenAI's chat
completions (``/v1/chat/completions``) and Anthropic's Messages API (``/v1/messages``).

It is not a model. Tests and benchmarks point ``OpenAICompatClient`` or ``AnthropicClient`` at it to get
answers generated from the requested JSON schema, and failures on demand (the same on either wire, each
in its vendor's shape: ``openai_wire``, ``anthropic_wire``): by probability (``SimulatorConfig``) or per
request, with a ``[[sim:KIND]]`` or ``[[sim:latency=MS]]`` marker in any message. A
``[[sim:outage=N]]`` marker plays a provider outage for that prompt: its first N requests get a 500,
later ones an answer. A ``[[sim:tool NAME {json-args}]]`` marker in a user or system message makes it
answer with a call of that tool first (one call per marker, in order; ``connectors.simulator.chat``);
the request's ``tools`` must offer NAME. With ``--requests-per-minute`` / ``--tokens-per-minute`` it
enforces rate limits the way OpenAI does, with ``x-ratelimit-*`` headers on every answer
(``anthropic-ratelimit-*`` on the Anthropic wire; ``connectors.simulator.limits``);
``POST /sim/throttle {"seconds": S}`` answers every request with a 429 for S seconds.

    python -m connectors.simulator --port 8090 --latency-ms 200 --p-5xx 0.3 --seed 7
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from random import Random
from typing import Annotated, Any, Protocol, Self

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from connectors.simulator import outputs as out
from connectors.simulator.anthropic_wire import AnthropicWire
from connectors.simulator.chat import SimChat, SimToolCall
from connectors.simulator.limits import HeaderStyle, SimRateLimits, Verdict
from connectors.simulator.openai_wire import OpenAIWire
from streams.core.ports.model import max_output_tokens

Probability = Annotated[float, Field(ge=0.0, le=1.0)]

# Faults drawn by probability, in the order their probabilities are stacked on [0, 1).
RANDOM_FAULTS = ("5xx", "timeout", "hang", "429", "malformed", "schema_violation", "truncated", "auth")
_INVALID = "invalid_request"
_RATE_LIMITED = "rate_limited"  # refused by the simulated rate limits or the throttle
_MAX_HANG_S = 300.0


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0.0)
    latency_sigma: float = Field(default=0.0, ge=0.0)  # > 0: log-normal latency, median latency_ms
    p_5xx: Probability = 0.0
    p_timeout: Probability = 0.0  # answer only after slow_s
    p_hang: Probability = 0.0  # send headers and half the body, then stall until hang_s
    p_429: Probability = 0.0
    p_malformed: Probability = 0.0
    p_schema_violation: Probability = 0.0
    p_truncated: Probability = 0.0
    p_auth: Probability = 0.0
    slow_s: float = Field(default=30.0, gt=0.0)
    hang_s: float = Field(default=_MAX_HANG_S, gt=0.0, le=_MAX_HANG_S)
    retry_after_s: float = Field(default=1.0, ge=0.0)
    requests_per_minute: float = Field(default=0.0, ge=0.0)  # 0: no limit
    tokens_per_minute: float = Field(default=0.0, ge=0.0)  # prompt tokens + max_tokens; 0: no limit
    rate_limit_period_s: float = Field(default=60.0, gt=0.0)  # a bucket holds this much of its limit
    seed: int = 0
    model_name: str = "keel-simulator-1"

    @model_validator(mode="after")
    def _probabilities_fit(self) -> Self:
        total = sum(p for _, p in self.fault_probabilities())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities add up to {total:.3f}, more than 1")
        return self

    def fault_probabilities(self) -> tuple[tuple[str, float], ...]:
        return tuple((kind, float(getattr(self, f"p_{kind}"))) for kind in RANDOM_FAULTS)


def choose_fault(config: SimulatorConfig, draw: float) -> str:
    """The fault a uniform ``draw`` in [0, 1) lands on, or ``"ok"``."""
    edge = 0.0
    for kind, probability in config.fault_probabilities():
        edge += probability
        if draw < edge:
            return kind
    return "ok"


def draw_latency_ms(config: SimulatorConfig, rng: Random) -> float:
    if config.latency_sigma > 0 and config.latency_ms > 0:
        return rng.lognormvariate(math.log(config.latency_ms), config.latency_sigma)
    return config.latency_ms


class SimWire(Protocol):
    """One vendor's wire protocol: how a request reads, how an answer and each error are written."""

    path: str

    def read(self, raw: bytes, headers: Mapping[str, str]) -> SimChat: ...

    def headers(self) -> HeaderStyle: ...

    def error(self, kind: str, detail: str = "", unit: str = "") -> tuple[int, dict[str, Any]]: ...

    def answer(
        self,
        *,
        answer_id: str,
        model: str,
        content: str | None,
        finish_reason: str,
        prompt_chars: int,
        created: int,
        tool_call: SimToolCall | None,
    ) -> dict[str, Any]: ...


WIRES: tuple[SimWire, ...] = (OpenAIWire(), AnthropicWire())


def _json(status: int, body: Mapping[str, Any], *, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


class _Simulator:
    """The server's state (random stream, counters) and its request handlers."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._rng = Random(config.seed)  # noqa: S311 - a reproducible fault stream, not a secret
        self._counts: Counter[str] = Counter()
        self._outage_calls: Counter[int] = Counter()  # by prompt
        self._total = 0
        self._closing = asyncio.Event()
        self._started = time.monotonic()
        self._times: deque[float] = deque(maxlen=100_000)  # when requests arrived, seconds since start
        self._limits = SimRateLimits.configure(
            requests_per_minute=config.requests_per_minute,
            tokens_per_minute=config.tokens_per_minute,
            period_s=config.rate_limit_period_s,
            now=self._started,
        )

    def stats(self) -> dict[str, Any]:
        kinds = (*out.FAULT_KINDS, _INVALID)
        return {
            "requests_total": self._total,
            "faults": {kind: self._counts[kind] for kind in kinds},
            "rate_limited": self._counts[_RATE_LIMITED],
        }

    def close(self) -> None:
        """Wake every request that is sleeping (slow, hanging) so the server stops at once."""
        self._closing.set()

    def build_app(self) -> web.Application:
        app = web.Application()
        for wire in WIRES:
            app.router.add_post(wire.path, functools.partial(self._chat, wire=wire))
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/sim/stats", self._stats)
        app.router.add_post("/sim/reset", self._reset)
        app.router.add_post("/sim/throttle", self._throttle)
        app.router.add_get("/sim/requests", self._requests)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        return _json(200, {"status": "ok"})

    async def _models(self, _: web.Request) -> web.Response:
        model = {"id": self.config.model_name, "object": "model", "created": 0, "owned_by": "keel-simulator"}
        return _json(200, {"object": "list", "data": [model]})

    async def _stats(self, _: web.Request) -> web.Response:
        return _json(200, self.stats())

    async def _reset(self, _: web.Request) -> web.Response:
        self._counts.clear()
        self._total = 0
        self._times.clear()
        return _json(200, self.stats())

    async def _throttle(self, request: web.Request) -> web.Response:
        """Play an exhausted quota: every request gets a 429 for ``seconds``."""
        try:
            seconds = float(orjson.loads(await request.read())["seconds"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return _json(400, out.error_body(f'expected {{"seconds": S}}: {exc}', error_type="invalid", code=None))
        self._limits.throttle(seconds, time.monotonic())
        return _json(200, {"throttled_for_s": seconds})

    async def _requests(self, _: web.Request) -> web.Response:
        return _json(200, {"times_s": list(self._times)})

    async def _chat(self, request: web.Request, *, wire: SimWire) -> web.StreamResponse:
        self._total += 1
        arrived = time.monotonic()
        self._times.append(arrived - self._started)
        try:
            chat = wire.read(await request.read(), request.headers)
            body, texts = chat.body, chat.texts
            forced, latency_ms, outage = out.parse_directives(texts)
            draft = _draft(chat, self.config.seed)
        except ValueError as exc:  # not a chat request, an unknown directive, an unusable schema
            self._counts[_INVALID] += 1
            return _json(*wire.error("invalid", str(exc)))
        style = wire.headers()
        verdict = self._admit(body, texts, arrived, style)
        if not verdict.allowed:
            return _json(*wire.error("rate_limited", verdict.message, verdict.unit), headers=verdict.headers)
        draw = self._rng.random()
        drawn_latency_ms = draw_latency_ms(self.config, self._rng)
        if outage is not None:
            prompt = hash(tuple(texts))
            self._outage_calls[prompt] += 1
            forced = "5xx" if self._outage_calls[prompt] <= outage else forced or "ok"
        fault = forced or choose_fault(self.config, draw)
        self._counts[fault] += 1
        if fault == "hang":
            return await self._hang(request, wire, draft, texts, verdict.headers)
        if fault == "timeout":
            await self._pause(self.config.slow_s)
        else:
            await self._pause((drawn_latency_ms if latency_ms is None else latency_ms) / 1000)
        return self._answer(wire, fault, draft, texts, verdict.headers)

    def _admit(self, body: Mapping[str, Any], texts: Sequence[str], arrived: float, style: HeaderStyle) -> Verdict:
        """Charge the request to the simulated rate limits (when any are set), or refuse it."""
        tokens = _charged_tokens(body, texts)
        config = self.config
        verdict = self._limits.admit(
            tokens=tokens, now=arrived, model=config.model_name, retry_after_s=config.retry_after_s, style=style
        )
        if not verdict.allowed:
            self._counts[_RATE_LIMITED] += 1
        return verdict

    def _answer(
        self, wire: SimWire, fault: str, draft: _Draft, texts: Sequence[str], headers: dict[str, str]
    ) -> web.Response:
        if fault in ("5xx", "429", "auth", "context_length"):
            if fault == "429":
                headers = {**headers, "Retry-After": f"{self.config.retry_after_s:g}"}
            return _json(*wire.error(fault), headers=headers)
        content, finish_reason = _content(fault, draft)
        return _json(200, self._completion(wire, content, finish_reason, texts, draft.tool_call), headers=headers)

    def _completion(
        self,
        wire: SimWire,
        content: str | None,
        finish_reason: str,
        texts: Sequence[str],
        tool_call: SimToolCall | None = None,
    ) -> dict[str, Any]:
        return wire.answer(
            tool_call=tool_call,
            answer_id=f"{self._total:08d}",
            model=self.config.model_name,
            content=content,
            finish_reason=finish_reason,
            prompt_chars=sum(len(t) for t in texts),
            created=int(time.time()),
        )

    async def _hang(
        self, request: web.Request, wire: SimWire, draft: _Draft, texts: Sequence[str], headers: dict[str, str]
    ) -> web.StreamResponse:
        """Send the status, the headers and half a completion, then stall until the client gives up."""
        content, finish_reason = _content("ok", draft)
        full = orjson.dumps(self._completion(wire, content, finish_reason, texts))
        response = web.StreamResponse(status=200, headers={**headers, "Content-Type": "application/json"})
        response.content_length = len(full)
        await response.prepare(request)
        await response.write(full[: len(full) // 2])
        await self._pause(self.config.hang_s)
        response.force_close()
        if request.transport is not None:
            request.transport.close()  # the rest of the body never comes
        return response

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):  # the pause ran its full length: the usual case
            async with asyncio.timeout(seconds):
                await self._closing.wait()


def _charged_tokens(body: Mapping[str, Any], texts: Sequence[str]) -> int:
    """What a request counts against a tokens-per-minute limit before it is answered, as OpenAI
    counts it: its prompt tokens (as its usage reports them) plus the ``max_tokens`` it asks for."""
    return out.prompt_tokens_of(sum(len(text) for text in texts)) + (max_output_tokens(body) or 0)


@dataclass(frozen=True, slots=True)
class _Draft:
    """The valid answer to a request, and the generator that derives its faulty variants."""

    schema: Mapping[str, Any]
    value: Any
    rng: Random
    tool_call: SimToolCall | None = None  # due instead of the answer (when no fault is)


def _draft(chat: SimChat, seed: int) -> _Draft:
    rng = out.request_rng(seed, chat.body)
    schema = chat.schema or out.ANSWER_SCHEMA
    try:
        value = out.generate(schema, rng, out.prompt_words(chat.texts))
    except (TypeError, AttributeError, KeyError, IndexError) as exc:  # a schema outside the supported subset
        raise ValueError(f"cannot generate an answer from the response schema: {exc!r}") from exc
    return _Draft(schema, value, rng, chat.tool_call)


def _content(fault: str, draft: _Draft) -> tuple[str | None, str]:
    """The assistant content and finish reason for a 200 answer of the given kind."""
    text = orjson.dumps(draft.value).decode()
    if fault == "ok" and draft.tool_call is not None:
        return None, "tool_calls"
    if fault == "refusal":
        return None, "content_filter"
    if fault == "malformed":
        return out.malformed(text, draft.rng), "stop"
    if fault == "schema_violation":
        return orjson.dumps(out.violate(draft.schema, draft.value, draft.rng)).decode(), "stop"
    if fault == "truncated":
        return out.truncate(text, draft.rng), "length"
    return text, "stop"


class RunningSimulator:
    """A simulator serving on loopback; ``url`` is the base URL clients take (it ends in ``/v1``)."""

    def __init__(self, simulator: _Simulator, runner: web.AppRunner, host: str, port: int) -> None:
        self._simulator = simulator
        self._runner = runner
        self.host = host
        self.port = port
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"

    def stats(self) -> dict[str, Any]:
        return self._simulator.stats()

    async def stop(self) -> None:
        self._simulator.close()
        await self._runner.cleanup()


async def start_simulator(config: SimulatorConfig, *, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Serve the simulator on ``host:port`` (port 0: any free port) until ``stop()``."""
    simulator = _Simulator(config)
    runner = web.AppRunner(simulator.build_app(), handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return RunningSimulator(simulator, runner, host, int(runner.addresses[0][1]))


@contextlib.asynccontextmanager
async def run_simulator(
    config: SimulatorConfig, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    simulator = await start_simulator(config, host=host, port=port)
    try:
        yield simulator
    finally:
        await simulator.stop()
