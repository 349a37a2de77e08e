"""The provider simulator's own rate limits, enforced and reported the way OpenAI does.

Requests and tokens per minute are token buckets that start full, refill continuously and hold
``period_s`` seconds of the limit (OpenAI: a minute; less plays a provider that enforces over a
shorter period). A request is charged its prompt tokens plus its ``max_tokens`` before it is answered.
Every answer carries ``x-ratelimit-limit-*``, ``x-ratelimit-remaining-*`` and ``x-ratelimit-reset-*``
(the time until the bucket is full again, as ``1s``, ``6m0s``, ``20ms``); a request over a limit gets
a 429 with ``retry-after-ms`` and ``Retry-After``. Over the Anthropic wire (``AnthropicHeaders``) the same
buckets are told as ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``, the reset an
RFC 3339 time, and a refusal carries ``retry-after`` in whole seconds. A *throttle* plays an exhausted
quota: for a while every request gets a 429 saying that nothing remains until the throttle ends.

Pure: the time is an argument. ``connectors.simulator.server`` owns the HTTP server around it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Protocol

SECONDS_PER_MINUTE = 60.0


@dataclass(slots=True)
class SimBucket:
    per_minute: float
    capacity: float
    level: float
    updated: float

    @classmethod
    def full(cls, per_minute: float, period_s: float, now: float) -> SimBucket:
        capacity = per_minute * period_s / SECONDS_PER_MINUTE
        return cls(per_minute, capacity, capacity, now)

    @property
    def per_s(self) -> float:
        return self.per_minute / SECONDS_PER_MINUTE

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.per_s)
        self.updated = now

    def wait_for(self, cost: float) -> float:
        """Seconds until the bucket holds ``cost`` (a cost above the capacity needs a full bucket)."""
        return max(0.0, (min(cost, self.capacity) - self.level) / self.per_s)

    def headers(self, unit: str, style: HeaderStyle) -> dict[str, str]:
        return style.bucket(
            unit, self.per_minute, max(0, math.floor(self.level)), (self.capacity - self.level) / self.per_s
        )


class HeaderStyle(Protocol):
    """How a provider's answers tell its rate limits."""

    def bucket(self, unit: str, limit: float | None, remaining: int, reset_s: float) -> dict[str, str]: ...

    def retry(self, wait_s: float) -> dict[str, str]: ...


class OpenAIHeaders:
    def bucket(self, unit: str, limit: float | None, remaining: int, reset_s: float) -> dict[str, str]:
        headers = {} if limit is None else {f"x-ratelimit-limit-{unit}": f"{limit:g}"}
        headers[f"x-ratelimit-remaining-{unit}"] = str(remaining)
        headers[f"x-ratelimit-reset-{unit}"] = format_duration(reset_s)
        return headers

    def retry(self, wait_s: float) -> dict[str, str]:
        return {"retry-after-ms": str(math.ceil(wait_s * 1000)), "retry-after": str(math.ceil(wait_s))}


@dataclass(frozen=True, slots=True)
class AnthropicHeaders:
    wall_now: dt.datetime  # resets are told as times, so the wall clock of the answer is needed

    def bucket(self, unit: str, limit: float | None, remaining: int, reset_s: float) -> dict[str, str]:
        headers = {} if limit is None else {f"anthropic-ratelimit-{unit}-limit": str(math.floor(limit))}
        headers[f"anthropic-ratelimit-{unit}-remaining"] = str(remaining)
        reset = self.wall_now + dt.timedelta(seconds=math.ceil(reset_s))
        headers[f"anthropic-ratelimit-{unit}-reset"] = reset.strftime("%Y-%m-%dT%H:%M:%SZ")
        return headers

    def retry(self, wait_s: float) -> dict[str, str]:
        return {"retry-after": str(math.ceil(wait_s))}


OPENAI_HEADERS = OpenAIHeaders()


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]
    unit: str = ""  # what a refused request ran out of: "requests" or "tokens"
    message: str = ""


@dataclass(slots=True)
class SimRateLimits:
    requests: SimBucket | None = None
    tokens: SimBucket | None = None
    throttled_until: float = 0.0

    @classmethod
    def configure(
        cls, *, requests_per_minute: float, tokens_per_minute: float, period_s: float, now: float
    ) -> SimRateLimits:
        requests = SimBucket.full(requests_per_minute, period_s, now) if requests_per_minute > 0 else None
        tokens = SimBucket.full(tokens_per_minute, period_s, now) if tokens_per_minute > 0 else None
        return cls(requests, tokens)

    def throttle(self, seconds: float, now: float) -> None:
        self.throttled_until = max(self.throttled_until, now + seconds)

    def admit(
        self, *, tokens: int, now: float, model: str, retry_after_s: float, style: HeaderStyle = OPENAI_HEADERS
    ) -> Verdict:
        """Charge one request of ``tokens`` tokens, or refuse it; ``retry_after_s`` is what a throttled
        answer's ``Retry-After`` says (like a provider, it may say less than the reset)."""
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.refill(now)
        if now < self.throttled_until:
            return self._throttled(now, retry_after_s, style)
        for unit, bucket, cost in (("requests", self.requests, 1), ("tokens", self.tokens, tokens)):
            if bucket is not None and bucket.wait_for(cost) > 0:
                return self._over(unit, bucket, cost, model, style)
        for bucket, cost in ((self.requests, 1), (self.tokens, tokens)):
            if bucket is not None:
                bucket.level -= cost
        return Verdict(True, self.headers(style))

    def headers(self, style: HeaderStyle = OPENAI_HEADERS) -> dict[str, str]:
        headers: dict[str, str] = {}
        for unit, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket is not None:
                headers.update(bucket.headers(unit, style))
        return headers

    def _throttled(self, now: float, retry_after_s: float, style: HeaderStyle) -> Verdict:
        headers = self.headers(style)
        limit = self.requests.per_minute if self.requests else None
        headers.update(style.bucket("requests", limit, 0, self.throttled_until - now))
        headers["retry-after"] = f"{retry_after_s:g}"
        message = "You exceeded your current quota for requests; it resets in " + format_duration(
            self.throttled_until - now
        )
        return Verdict(False, headers, "requests", message)

    def _over(self, unit: str, bucket: SimBucket, cost: int, model: str, style: HeaderStyle) -> Verdict:
        wait_s = bucket.wait_for(cost)
        headers = self.headers(style)
        headers.update(style.retry(wait_s))
        short = "RPM" if unit == "requests" else "TPM"
        used = math.ceil(bucket.capacity - bucket.level)
        message = (
            f"Rate limit reached for {model} in organization org-keel-sim on {unit} per min ({short}): "
            f"Limit {bucket.per_minute:g}, Used {used}, Requested {cost}. "
            f"Please try again in {format_duration(wait_s)}."
        )
        return Verdict(False, headers, unit, message)


def format_duration(seconds: float) -> str:
    """OpenAI's reset format, rounded up to the millisecond: ``20ms``, ``1.5s``, ``6m0s``."""
    ms = max(0, math.ceil(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest_ms = divmod(ms, 60_000)
    secs = f"{rest_ms / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
