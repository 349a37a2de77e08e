"""Retry tiers: the tier record the emitter writes, and how the worker reads it back."""

import dataclasses
from collections.abc import Callable

import pytest

from streams.agent.definition import Agent
from streams.contracts.emit import Emitter
from streams.contracts.retry import H_ATTEMPTS, H_ORIGIN, H_PASS, H_REASON, H_TIER, Arrival, arrival
from streams.core.catalogue import Catalogue
from streams.core.domain import Attempt, Failure, RetryLater, SourceRecord, Stage, Trace
from streams.core.settings import Settings
from streams.cost.pricing import Pricing

EARLIER = Attempt("sim", "m", 1, 1_800_000_000_000, 2.0, 0, 0, None, "provider_5xx")
NOW = Attempt("sim", "m", 2, 1_800_000_030_000, 2.0, 0, 0, None, "provider_timeout", "tier_retry")


def _waiting(source: SourceRecord, tier: int) -> RetryLater:
    trace = Trace(source, 1, None, None, (EARLIER, NOW), earlier_attempts=1, tier=tier - 1, pass_number=tier - 1)
    return RetryLater(trace, Failure(Stage.MODEL, "ProviderTimeout", "provider_timeout", "slow"), tier)


def test_the_tier_record_is_the_original_record_in_its_partition_plus_what_was_tried(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], pricing: Pricing
) -> None:
    source, agent = make_source(), agents["support_triage"]
    emission = Emitter(catalogue, Settings(namespace="t1"), [agent], pricing=pricing).records(
        _waiting(source, 2), agent, now_ms=9
    )
    tier_record = emission.outcome
    assert (tier_record.topic, tier_record.partition) == ("t1.support_triage.retry.2", source.partition)
    assert (tier_record.key, tier_record.value) == (source.key, source.value)
    headers = dict(tier_record.headers)
    assert headers["h"] == b"v" and headers[H_TIER] == b"2" and headers[H_REASON] == b"provider_timeout"
    assert headers[H_ORIGIN] == b"support.tickets/2/7"
    assert emission.audit is None and headers[H_PASS] == b"2"  # the audit record comes with the final outcome
    assert [r.topic for r in emission.usage] == ["t1.keel.usage"]  # the earlier attempt was counted before


def test_a_tier_record_reads_back_as_its_first_arrival(
    catalogue: Catalogue, agents: dict[str, Agent], make_source: Callable[..., SourceRecord], pricing: Pricing
) -> None:
    source, agent = make_source(), agents["support_triage"]
    record = (
        Emitter(catalogue, Settings(), [agent], pricing=pricing).records(_waiting(source, 1), agent, now_ms=9).outcome
    )
    delivered = SourceRecord(record.topic, 2, 40, 1_800_000_100_000, record.key, record.value, record.headers)
    back = arrival(delivered, tier=1, delay_s=30)
    assert back.source == source
    assert back.earlier == (EARLIER, NOW)
    assert (back.tier, back.due_ms) == (1, 1_800_000_130_000)


def test_a_tier_record_with_unreadable_headers_runs_as_it_is(make_source: Callable[..., SourceRecord]) -> None:
    delivered = dataclasses.replace(make_source(), headers=((H_ORIGIN, b"nonsense"), (H_ATTEMPTS, b"[")))
    back = arrival(delivered, tier=3, delay_s=1)
    assert (back.source, back.earlier, back.tier) == (delivered, (), 3)


def test_an_input_record_is_due_at_once(make_source: Callable[..., SourceRecord]) -> None:
    source = make_source()
    assert arrival(source, tier=0, delay_s=0) == Arrival(source, 0, (), 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (H_ORIGIN, b"support.tickets/99/7"),  # not the partition it is read from: the store entry is not there
        (H_ATTEMPTS, b'[{"provider": "sim", "model": "m", "number": "one"}]'),
        (H_ATTEMPTS, b'["not an attempt"]'),
        (H_ATTEMPTS, b'{"provider": "sim"}'),
    ],
    ids=["origin in another partition", "an attempt's number is text", "attempts are not objects", "not a list"],
)
def test_a_tier_record_keel_did_not_write_runs_as_it_is(
    catalogue: Catalogue,
    agents: dict[str, Agent],
    make_source: Callable[..., SourceRecord],
    pricing: Pricing,
    name: str,
    value: bytes,
) -> None:
    source, agent = make_source(), agents["support_triage"]
    record = (
        Emitter(catalogue, Settings(), [agent], pricing=pricing).records(_waiting(source, 1), agent, now_ms=9).outcome
    )
    headers = tuple((k, value if k == name else v) for k, v in record.headers)
    delivered = SourceRecord(record.topic, 2, 40, 1_800_000_100_000, record.key, record.value, headers)
    back = arrival(delivered, tier=1, delay_s=30)
    assert (back.source, back.earlier, back.tier) == (delivered, (), 1)
