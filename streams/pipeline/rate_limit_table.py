"""Declared rate limits of provider models: a small table (``deploy/rate_limits.yaml``, or the file
``KEEL_RATE_LIMITS_FILE`` names), for the whole consumer group. Agents declare theirs in their own
definition (``rate_limit:``); both are enforced by ``streams.pipeline.limiter``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.agent.definition import RateLimitPolicy
from streams.core.config_file import load_model
from streams.core.errors import RateLimitTableError


class ModelRateLimit(RateLimitPolicy):
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"


class RateLimitTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limits: tuple[ModelRateLimit, ...] = ()

    @model_validator(mode="after")
    def _one_entry_per_model(self) -> RateLimitTable:
        keys = [limit.key for limit in self.limits]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise ValueError(f"limited twice: {', '.join(twice)}")
        return self

    def by_model(self) -> dict[str, RateLimitPolicy]:
        return {limit.key: limit for limit in self.limits}


def load_rate_limits(path: Path) -> RateLimitTable:
    return load_model(path, RateLimitTable, RateLimitTableError, what="the rate limits")
