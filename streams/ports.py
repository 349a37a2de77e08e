"""What the pipeline needs from its surroundings, handed in by the wiring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from random import Random

from streams.catalogue import Catalogue
from streams.circuit import CircuitBreakers
from streams.clock import Clock
from streams.limiter import NO_LIMITS, RateLimiter
from streams.model import ModelClient


@dataclass(frozen=True, slots=True)
class Deps:
    catalogue: Catalogue
    models: Mapping[str, ModelClient]  # by provider name
    clock: Clock
    breakers: CircuitBreakers  # shared by every agent of the worker
    rng: Random  # jitter for retry backoff
    max_event_bytes: int
    limiter: RateLimiter = NO_LIMITS  # shared rate limits (streams/limiter.py); the default never waits
