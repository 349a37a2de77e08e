from streams.cli.usage_report import WindowRow, format_rows
from streams.cost.usage_windows import Lateness, UsageRecord, UsageStats, split_key


def record(offset: int, *, outcome: str = "ok", latency_ms: float = 400, cost: float | None = 0.5, at_ms: int = 0):
    return UsageRecord("triage", "sim", "m", "acme", outcome, 100, 10, latency_ms, cost, at_ms, 2, offset)


def test_stats_add_up_and_a_redelivered_record_is_not_counted_twice() -> None:
    window = UsageStats()
    for offset in (5, 6, 7):
        window = window + UsageStats.of(record(offset, outcome="ok" if offset != 6 else "output_not_json"))
    again = window + UsageStats.of(record(6))  # read again after a crash: already counted
    assert again is window
    assert (window.calls, window.successes, window.validation_failures) == (3, 2, 1)
    assert window.failures == {"output_not_json": 1} and window.tokens_in == 300 and window.cost_usd == 1.5


def test_merging_for_reading_does_not_skip_and_unpriced_calls_are_flagged() -> None:
    a = UsageStats.of(record(9))
    b = UsageStats.of(record(3, cost=None))  # another window: lower offsets are not redeliveries here
    merged = a.merged(b)
    assert merged.calls == 2 and merged.cost_usd == 0.5 and merged.unpriced == 1
    assert UsageStats.from_bytes(merged.to_bytes()) == merged


def test_percentiles_come_from_the_latency_buckets() -> None:
    stats = UsageStats()
    for offset, latency in enumerate([100] * 90 + [5000] * 9 + [60_000]):
        stats = stats + UsageStats.of(record(offset, latency_ms=latency))
    p50, p95, p99 = (stats.percentile_ms(q) for q in (0.5, 0.95, 0.99))
    assert p50 is not None and 100 <= p50 < 125
    assert p95 is not None and 5000 <= p95 < 6250
    assert p99 is not None and 5000 <= p99 < 6250  # the 99th of 100 calls is still a 5 s one
    assert UsageStats().percentile_ms(0.5) is None


def test_a_record_later_than_the_declared_lateness_is_too_late() -> None:
    lateness = Lateness(allowed_ms=300_000)
    assert not lateness.too_late(record(1, at_ms=1_000_000))
    assert not lateness.too_late(record(2, at_ms=1_600_000))
    assert not lateness.too_late(record(3, at_ms=1_300_000))  # out of order, exactly at the limit
    assert lateness.too_late(record(4, at_ms=1_299_999))


def test_keys_name_the_partition_and_each_dimension() -> None:
    keys = record(1).table_keys()
    assert keys == ["p2|agent=triage", "p2|model=sim/m", "p2|tenant=acme", "p2|kind=model"]
    assert split_key(keys[1]) == (2, "model", "sim/m")


def test_a_tool_call_counts_under_its_connector_and_tool_and_as_kind_tool() -> None:
    value = {"agent": "triage", "provider": "crm", "model": "create_ticket", "tenant": None, "outcome": "ok",
             "tokens_in": 0, "tokens_out": 0, "latency_ms": 12.0, "cost_usd": 0.0, "kind": "tool"}  # fmt: skip
    keys = UsageRecord.from_value(value, partition=0, offset=3, at_ms=0).table_keys()
    assert keys == ["p0|agent=triage", "p0|model=crm/create_ticket", "p0|tenant=-", "p0|kind=tool"]


def test_the_usage_table_shows_one_row_per_window() -> None:
    stats = UsageStats.of(record(1, cost=None)) + UsageStats.of(record(2, outcome="provider_timeout"))
    text = format_rows([WindowRow(1_800_000_000, "agent", "triage", stats)], period="hour", limit=10)
    header, row, note = text.splitlines()
    assert "p95 ms" in header and "2027-01-15 08:00" in row and "provider_timeout 1" in row
    assert "0.500000*" in row and "no price" in note
