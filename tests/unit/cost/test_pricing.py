from pathlib import Path

import pytest

from streams.core.domain import Attempt
from streams.core.errors import PricingError
from streams.core.settings import REPO_ROOT
from streams.cost.pricing import Price, PriceTable, Pricing, load_pricing

TABLE = PriceTable(
    version="v7",
    prices=(
        Price(provider="acme", model="big", input_usd_per_mtok=3, output_usd_per_mtok=15),
        Price(provider="acme", model="*", input_usd_per_mtok=0.5, output_usd_per_mtok=1),
        Price(provider="local", model="*", input_usd_per_mtok=0, output_usd_per_mtok=0),
        Price(
            provider="claude",
            model="*",
            input_usd_per_mtok=3,
            output_usd_per_mtok=15,
            cache_read_usd_per_mtok=0.3,
            cache_write_usd_per_mtok=3.75,
        ),
    ),
)


def test_cost_is_tokens_times_the_models_own_price_else_its_providers_wildcard() -> None:
    pricing = Pricing(TABLE)
    big = pricing.cost("acme", "big", tokens_in=1000, tokens_out=200)
    assert big.usd == pytest.approx((1000 * 3 + 200 * 15) / 1e6) and big.price_version == "v7"
    assert pricing.cost("acme", "small", tokens_in=2_000_000, tokens_out=0).usd == pytest.approx(1.0)
    assert pricing.cost("local", "anything", tokens_in=5000, tokens_out=5000).usd == 0.0


def test_prompt_cache_tokens_are_priced_apart_where_the_table_says_and_as_input_where_not() -> None:
    pricing = Pricing(TABLE)
    cached = pricing.cost("claude", "sonnet", tokens_in=1000, tokens_out=100, cache_read=600, cache_write=300)
    assert cached.usd == pytest.approx((100 * 3 + 600 * 0.3 + 300 * 3.75 + 100 * 15) / 1e6)
    plain = pricing.cost("acme", "big", tokens_in=1000, tokens_out=0, cache_read=600, cache_write=300)
    assert plain.usd == pytest.approx(1000 * 3 / 1e6)
    attempt = Attempt(
        provider="claude",
        model="sonnet",
        number=1,
        started_at_ms=0,
        latency_s=0.1,
        tokens_in=1000,
        tokens_out=100,
        model_version=None,
        outcome="ok",
        tokens_cache_read=600,
        tokens_cache_write=300,
    )
    assert pricing.attempt_cost(attempt) == cached


def test_a_call_that_was_not_billed_costs_nothing_and_an_unknown_model_has_no_cost() -> None:
    pricing = Pricing(TABLE)
    assert pricing.cost("acme", "big", tokens_in=0, tokens_out=0).usd == 0.0
    unknown = pricing.cost("other", "big", tokens_in=10, tokens_out=10)
    assert unknown.usd is None and unknown.price_version is None  # unpriced: never a silent $0
    assert pricing.unpriced([("acme", "x"), ("other", "big"), ("other", "big")]) == ["other/big"]


def test_the_shipped_table_prices_every_model_the_shipped_agents_use() -> None:
    pricing = load_pricing(REPO_ROOT / "deploy" / "pricing.yaml")
    assert pricing.price_of("local", "smollm2-135m-instruct") is not None
    assert pricing.price_of("sim", "smollm2-135m-instruct") is not None
    assert pricing.price_of("sim_anthropic", "smollm2-135m-instruct") is not None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "version: v1\nprices:\n  - {provider: a, model: m, input_usd_per_mtok: -1, output_usd_per_mtok: 0}",
            "greater",
        ),
        (
            "version: v1\nprices:\n  - {provider: a, model: m, input_usd_per_mtok: 1, output_usd_per_mtok: 1}\n"
            "  - {provider: a, model: m, input_usd_per_mtok: 2, output_usd_per_mtok: 2}",
            "priced twice",
        ),
        ("prices: []", "version"),
        ("version: v1\nprices: [", "cannot read"),
    ],
)
def test_a_bad_table_is_refused_with_the_reason(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "pricing.yaml"
    path.write_text(text)
    with pytest.raises(PricingError, match=problem):
        load_pricing(path)
