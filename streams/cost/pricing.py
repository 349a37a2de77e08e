"""What a model attempt costs: a versioned price table per provider and model, and the cost of tokens.

The table is data (``deploy/pricing.yaml``, or the file ``KEEL_PRICING_FILE`` names): USD per million
input and output tokens. A provider's ``"*"`` entry prices every model of that provider that has no
entry of its own (the embedded local model is listed as explicitly free this way). A model with no
price at all is *unpriced*: its usage records carry no cost (null, never a silent $0) and the
aggregation stream flags them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from streams.core.config_file import load_model
from streams.core.errors import PricingError

ANY_MODEL = "*"
_PER_MTOK = 1_000_000


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1, description='A model name, or "*" for every other model of the provider')
    input_usd_per_mtok: float = Field(ge=0)
    output_usd_per_mtok: float = Field(ge=0)


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

    def cost(self, provider: str, model: str, *, tokens_in: int, tokens_out: int) -> Cost:
        """A failed call the provider did not bill reports no tokens, and so costs 0."""
        price = self.price_of(provider, model)
        if price is None:
            return Cost(None, None)
        usd = (tokens_in * price.input_usd_per_mtok + tokens_out * price.output_usd_per_mtok) / _PER_MTOK
        return Cost(usd, self.table.version)

    def unpriced(self, models: list[tuple[str, str]]) -> list[str]:
        return sorted({f"{p}/{m}" for p, m in models if self.price_of(p, m) is None})


def load_pricing(path: Path) -> Pricing:
    return Pricing(load_model(path, PriceTable, PricingError, what="the price table"))
