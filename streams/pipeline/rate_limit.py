"""Rate limits as plain state and arithmetic: how long a call must wait before it may start.

Every declared limit (requests or tokens per minute, of a provider's model or of an agent) is one
bucket per worker, holding this worker's *share* of the group-wide limit: the part of the limit's
input partitions it owns (``shares``). The buckets follow the generic cell rate algorithm: a bucket
only remembers ``full_at``, the time it will be full again. A call costing ``c`` may start once the
bucket holds ``c`` (or is full, if ``c`` is more than it holds); it refills at ``share * per_minute / 60``
per second and holds at most ``burst_s`` seconds of that. Reserving books the cost at once, even for
a call that must wait, so calls are served in arrival order and each waiter sleeps exactly once.

Providers add *holds*: a 429's ``Retry-After``, or a limit whose ``remaining`` reached 0, stops every
call to that model until the time they name (``hold_from``). After a hold, the model is *recovering*
until one call gets through without being told to hold again.

Nothing here sleeps or reads a clock: the time is an argument (``streams.pipeline.limiter`` is the shell).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from streams.core.ports.model import ChatMessage, ProviderLimits, estimate_prompt_tokens, max_output_tokens

SECONDS_PER_MINUTE = 60.0
HOLD = "provider_hold"  # the limit a provider's hold stands for, in metrics and messages

Unit = Literal["requests", "tokens"]
TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PerMinute:
    """A declared limit, for the whole consumer group; None: no limit of that unit."""

    requests: float | None = None
    tokens: float | None = None


@dataclass(slots=True)
class Bucket:
    """This worker's share of one limit. ``name`` says what it limits, e.g. ``model_requests``."""

    name: str
    unit: Unit
    per_minute: float
    burst_s: float
    share: float = 1.0
    full_at: float = 0.0

    @property
    def per_s(self) -> float:
        return self.per_minute * self.share / SECONDS_PER_MINUTE

    def cost(self, tokens: int) -> float:
        """What a call estimated at ``tokens`` costs in this bucket's unit."""
        return tokens if self.unit == "tokens" else 1

    def wait_s(self, cost: float, now: float) -> float:
        """How long a call costing ``cost`` waits before it may start (inf: this worker has no share).
        A call costing more than the bucket holds waits for a full bucket and leaves it in debt, so an
        idle bucket always lets a call start at once, whatever its size."""
        rate = self.per_s
        if rate <= 0:
            return math.inf
        return max(0.0, max(self.full_at, now) + min(cost / rate, self.burst_s) - self.burst_s - now)

    def take(self, cost: float, now: float) -> None:
        self.full_at = max(self.full_at, now) + cost / self.per_s

    def give_back(self, cost: float) -> None:
        """Return part of a reservation (a negative cost takes more: the call used more than reserved)."""
        rate = self.per_s
        if rate > 0:
            self.full_at -= cost / rate

    def level(self, now: float) -> float:
        """What the bucket holds now (negative: booked ahead by calls still waiting)."""
        return self.per_s * (self.burst_s - max(0.0, self.full_at - now))

    def reshare(self, share: float, now: float) -> None:
        """A new share keeps what the bucket holds, up to its new size: a share that grows is earned at
        the refill rate, never granted as a burst, so two owners of a moved partition never both spend it."""
        level = self.level(now) if self.per_s > 0 else 0.0
        self.share = share
        rate = self.per_s
        if rate > 0:
            self.full_at = now + self.burst_s - min(level, rate * self.burst_s) / rate


@dataclass(slots=True)
class Permit:
    """A call's place under every limit that applies to it; ``start_at`` is when it may start."""

    model_key: str
    buckets: tuple[Bucket, ...]
    tokens: int  # reserved: the estimate
    start_at: float
    limit: str | None  # the limit that made it wait longest; None: it did not wait
    waited_s: float = 0.0
    probe: bool = False  # the first call after a hold: the others wait for its answer


@dataclass(frozen=True, slots=True)
class TooLong:
    """The wait would be longer than the caller can afford; nothing was reserved."""

    wait_s: float
    limit: str


@dataclass(slots=True)
class RateLimits:
    """Every bucket of one worker, and the holds providers asked for."""

    burst_s: float
    by_agent: dict[str, tuple[Bucket, ...]] = field(default_factory=dict)
    by_model: dict[str, tuple[Bucket, ...]] = field(default_factory=dict)
    holds: dict[str, float] = field(default_factory=dict)  # model key -> no call before this time
    recovering: set[str] = field(default_factory=set)
    _pairs: dict[tuple[str, str], tuple[Bucket, ...]] = field(default_factory=dict)

    @classmethod
    def declare(
        cls, *, agents: Mapping[str, PerMinute], models: Mapping[str, PerMinute], burst_s: float, now: float
    ) -> RateLimits:
        """Buckets start empty: a worker that just started may not spend what its predecessor spent."""
        by_agent = {name: _buckets("agent", limit, burst_s, now) for name, limit in agents.items()}
        by_model = {key: _buckets("model", limit, burst_s, now) for key, limit in models.items()}
        return cls(burst_s, {k: v for k, v in by_agent.items() if v}, {k: v for k, v in by_model.items() if v})

    @property
    def declared(self) -> bool:
        return bool(self.by_agent or self.by_model)

    def reserve(self, agent: str, model_key: str, *, tokens: int, now: float, max_wait_s: float) -> Permit | TooLong:
        """Book a call of ``agent`` to ``model_key`` estimated at ``tokens``, unless it would wait longer
        than ``max_wait_s``."""
        buckets = self._buckets_of(agent, model_key)
        wait, limit = self.holds.get(model_key, now) - now, HOLD
        for bucket in buckets:
            needed = bucket.wait_s(bucket.cost(tokens), now)
            if needed > wait:
                wait, limit = needed, bucket.name
        if wait > max_wait_s:
            return TooLong(wait, limit)
        for bucket in buckets:
            bucket.take(bucket.cost(tokens), now)
        return Permit(model_key, buckets, tokens, now + max(0.0, wait), limit if wait > 0 else None)

    def cancel(self, permit: Permit) -> None:
        """The call was not made: give its reservation back."""
        for bucket in permit.buckets:
            bucket.give_back(bucket.cost(permit.tokens))

    def correct(self, permit: Permit, tokens_used: int) -> None:
        """The call used ``tokens_used`` tokens in all, not the estimate."""
        for bucket in permit.buckets:
            if bucket.unit == "tokens":
                bucket.give_back(permit.tokens - tokens_used)

    def hold(self, model_key: str, until: float) -> None:
        self.holds[model_key] = max(until, self.holds.get(model_key, until))
        self.recovering.add(model_key)

    def held_until(self, model_key: str, now: float) -> float | None:
        until = self.holds.get(model_key)
        if until is not None and until <= now:
            del self.holds[model_key]
            return None
        return until

    def pending(self, now: float) -> bool:
        """Whether any hold is still in force, or a model still recovers from one."""
        for key in [key for key, until in self.holds.items() if until <= now]:
            del self.holds[key]
        return bool(self.holds or self.recovering)

    def reshare(self, agent_shares: Mapping[str, float], model_shares: Mapping[str, float], now: float) -> None:
        for name, buckets in self.by_agent.items():
            for bucket in buckets:
                bucket.reshare(agent_shares.get(name, 0.0), now)
        for key, buckets in self.by_model.items():
            for bucket in buckets:
                bucket.reshare(model_shares.get(key, 0.0), now)

    def _buckets_of(self, agent: str, model_key: str) -> tuple[Bucket, ...]:
        pair = (agent, model_key)
        buckets = self._pairs.get(pair)
        if buckets is None:
            buckets = self._pairs[pair] = self.by_agent.get(agent, ()) + self.by_model.get(model_key, ())
        return buckets


def _buckets(scope: str, limit: PerMinute, burst_s: float, now: float) -> tuple[Bucket, ...]:
    declared: list[tuple[Unit, float | None]] = [("requests", limit.requests), ("tokens", limit.tokens)]
    return tuple(
        Bucket(f"{scope}_{unit}", unit, per_minute, burst_s, full_at=now + burst_s)
        for unit, per_minute in declared
        if per_minute is not None
    )


def hold_from(limits: ProviderLimits, now: float) -> tuple[float, str] | None:
    """Until when a provider's answer stops calls to its model, and why (``retry_after``: it said so;
    ``exhausted``: a limit's remaining reached 0, until its reset), or None."""
    holds: list[tuple[float, str]] = []
    if limits.retry_after_s is not None:
        holds.append((now + limits.retry_after_s, "retry_after"))
    for remaining, reset_s in (
        (limits.remaining_requests, limits.reset_requests_s),
        (limits.remaining_tokens, limits.reset_tokens_s),
    ):
        if remaining is not None and remaining <= 0 and reset_s is not None:
            holds.append((now + reset_s, "exhausted"))
    return max(holds) if holds else None


def shares(owned: Collection[TP], reads: Mapping[str, Iterable[str]], partitions: int) -> dict[str, float]:
    """For each name (an agent, or a model key), the part of the partitions of the topics it reads
    that this worker owns. Summed over the workers of a group, each name's shares make 1."""
    counts = Counter(topic for topic, _ in set(owned))
    result = {}
    for name, topics in reads.items():
        unique = set(topics)
        result[name] = sum(counts[topic] for topic in unique) / (len(unique) * partitions) if unique else 0.0
    return result


def estimate_tokens(messages: Sequence[ChatMessage], parameters: Mapping[str, Any]) -> int:
    """What a call will count against a tokens-per-minute limit, before it is made: the prompt at
    ``CHARS_PER_TOKEN`` characters a token, plus the answer's ``max_tokens`` when the request sets it."""
    return estimate_prompt_tokens(messages) + (max_output_tokens(parameters) or 0)
