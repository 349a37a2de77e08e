"""What the pipeline needs from its surroundings, handed in by the wiring."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any, Protocol

from streams.agent.definition import ModelSpec
from streams.core.catalogue import Catalogue
from streams.core.domain import Attempt
from streams.core.ports.clock import Clock
from streams.core.ports.model import ModelClient
from streams.cost.budget import Reservation
from streams.pipeline.circuit import CircuitBreakers
from streams.pipeline.limiter import NO_LIMITS, RateLimiter
from streams.pipeline.model_slots import NO_SLOTS, ModelSlots
from streams.pipeline.tools import Toolbox


class KeyTable(Protocol):
    """A compacted topic as the worker holds it: the latest value of each key (None: none, or deleted);
    context lookups read it (streams/pipeline/context.py, streams/kafka/topic_table.py)."""

    def get(self, key: str) -> Any | None: ...


class BudgetGate(Protocol):
    """Reserves a call's maximum cost in every budget an event falls under, and settles it after the
    call (streams/apps/worker/budget_client.py talks to the budget owners)."""

    def applies(self, agent: str, tenant: str | None) -> bool: ...

    async def reserve(
        self, agent: str, tenant: str | None, spec: ModelSpec, *, prompt_chars: int, messages: int, expires_in_s: float
    ) -> Reservation: ...

    def settle(self, reservation: Reservation, attempt: Attempt) -> None: ...

    def abandon(self, reservation: Reservation) -> None: ...

    def release(self, reservation: Reservation) -> None:
        """The call was not made (no rate-limit room or model slot in time): drop the holds."""
        ...


@dataclass(frozen=True, slots=True)
class Deps:
    catalogue: Catalogue
    models: Mapping[str, ModelClient]  # by provider name
    clock: Clock
    breakers: CircuitBreakers  # shared by every agent of the worker
    rng: Random  # jitter for retry backoff
    max_event_bytes: int
    budgets: BudgetGate | None = None  # None: no budgets declared
    limiter: RateLimiter = NO_LIMITS  # shared rate limits (streams/pipeline/limiter.py); the default never waits
    slots: ModelSlots = NO_SLOTS  # per-model concurrency (streams/pipeline/model_slots.py); the default limits none
    toolbox: Toolbox | None = None  # the connectors' tools (streams/pipeline/tools.py); None: no connectors
    tables: Mapping[str, KeyTable] = field(default_factory=dict)  # compacted topics context lookups read, by name
