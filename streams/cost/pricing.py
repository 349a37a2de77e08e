"""What a model attempt costs: a versioned price table per provider and model, and the cost of tokens.

The table is data (``deploy/pricing.yaml``, or the file ``KEEL_PRICING_FILE`` names): USD per million
input and output tokens, and optionally per million input tokens read from or written to the provider's
prompt cache (Anthropic bills them apart; unset, they cost what other input tokens cost). A provider's
``"*"`` entry prices every model of that provider that has no entry of its own (the embedded local
model is listed as explicitly free this way). A model with no
price at all is *unpriced*: its usage records carry no cost (null, never a silent $0) and the
aggregation stream flags them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.core.config_file import load_model
from streams.core.domain import Attempt
from streams.core.errors import PricingError

ANY_MODEL = "*"
_PER_MTOK = 1_000_000


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1, description='A model name, or "*" for every other model of the provider')
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)
    cache_read_usd_per_mtok: float | None = Field(default=None, ge=0, description="Unset: the input price")
    cache_write_usd_per_mtok: float | None = Field(default=None, ge=0, description="Unset: the input price")


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="Recorded on every usage record priced with this table")
    prices: tuple[Price, ...]

    @model_validator(mode="after")
    def _one_price_per_model(self) -> PriceTable:
        seen: set[tuple[str, str]] = set()
        for price in self.prices:
            key = (price.provider, price.model)
            if key in seen:
                raise ValueError(f"{price.provider}/{price.model} is priced twice")
            seen.add(key)
        return self

    def price_of(self, provider: str, model: str) -> Price | None:
        exact = wildcard = None
        for price in self.prices:
            if price.provider == provider:
                if price.model == model:
                    exact = price
                elif price.model == ANY_MODEL:
                    wildcard = price
        return exact or wildcard


@dataclass(frozen=True, slots=True)
class Cost:
    usd: float | None  # None: the model has no price
    price_version: str | None


class Pricing:
    """A price table with its lookups done once per model (prices do not change while a worker runs)."""

    def __init__(self, table: PriceTable) -> None:
        self.table = table
        self._cache: dict[tuple[str, str], Price | None] = {}

    def price_of(self, provider: str, model: str) -> Price | None:
        key = (provider, model)
        if key not in self._cache:
            self._cache[key] = self.table.price_of(provider, model)
        return self._cache[key]

    def cost(
        self, provider: str, model: str, *, tokens_in: int, tokens_out: int, cache_read: int = 0, cache_write: int = 0
    ) -> Cost:
        """``cache_read`` and ``cache_write`` are the part of ``tokens_in`` the prompt cache served or
        stored. A failed call the provider did not bill reports no tokens, and so costs 0."""
        price = self.price_of(provider, model)
        if price is None:
            return Cost(None, None)
        per_in = price.input_usd_per_mtok
        read = per_in if price.cache_read_usd_per_mtok is None else price.cache_read_usd_per_mtok
        write = per_in if price.cache_write_usd_per_mtok is None else price.cache_write_usd_per_mtok
        uncached = max(0, tokens_in - cache_read - cache_write)
        usd = (
            uncached * per_in + cache_read * read + cache_write * write + tokens_out * price.output_usd_per_mtok
        ) / _PER_MTOK
        return Cost(usd, self.table.version)

    def attempt_cost(self, attempt: Attempt) -> Cost:
        """What a model attempt cost (a tool call's cost is not the price table's: see its caller)."""
        return self.cost(
            attempt.provider,
            attempt.model,
            tokens_in=attempt.tokens_in,
            tokens_out=attempt.tokens_out,
            cache_read=attempt.tokens_cache_read,
            cache_write=attempt.tokens_cache_write,
        )

    def unpriced(self, models: list[tuple[str, str]]) -> list[str]:
        return sorted({f"{p}/{m}" for p, m in models if self.price_of(p, m) is None})


def load_pricing(path: Path) -> Pricing:
    return Pricing(load_model(path, PriceTable, PricingError, what="the price table"))
