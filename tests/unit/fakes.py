"""Test doubles for the pipeline's ports: a scripted model and a clock that only moves when told."""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from streams.catalogue import Catalogue
from streams.circuit import CircuitBreakers
from streams.model import ModelRequest, ModelResponse
from streams.ports import Deps


class FakeClock:
    """Each reading advances 10 ms; sleeping advances by the time slept (and records it)."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def now_ms(self) -> int:
        return 1_800_000_000_000 + int(self.t * 1000)

    def monotonic(self) -> float:
        self.t += 0.01
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


@dataclass
class ScriptedModel:
    """Answers each call with the next scripted reply (a response, or an error to raise)."""

    replies: list[ModelResponse | Exception]
    provider: str = "sim"
    requests: list[ModelRequest] = field(default_factory=list)
    seconds_per_call: float = 0.0
    clock: FakeClock | None = None

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if self.clock is not None:
            self.clock.t += self.seconds_per_call
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def aclose(self) -> None:
        return None


def reply(text: str, finish_reason: str = "stop", model_version: str = "keel-simulator-1+sim") -> ModelResponse:
    return ModelResponse(text, model_version, 120, 40, 0.25, finish_reason)


def make_deps(
    catalogue: Catalogue,
    models: dict[str, ScriptedModel],
    *,
    clock: FakeClock | None = None,
    breakers: CircuitBreakers | None = None,
) -> Deps:
    return Deps(
        catalogue=catalogue,
        models=models,
        clock=clock or FakeClock(),
        breakers=breakers or CircuitBreakers(failure_threshold=3, cooldown_s=30),
        rng=Random(7),
        max_event_bytes=64 * 1024,
    )
