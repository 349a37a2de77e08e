"""`keel usage`: the aggregation tables read back from their changelogs and added up across partitions.

Each worker writes the windows of the usage partitions it owns; a window's figures for one agent (or
model, or tenant) are the sum of its per-partition values. Reading the compacted changelog needs no
running worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka import TopicPartition

from streams.contracts.topics import usage_changelog
from streams.core.kafka_client import ClientConfig
from streams.core.settings import Settings
from streams.cost.usage_windows import HOUR, MINUTE, UsageStats, WindowSpec, split_key
from streams.kafka.connection import client_config
from streams.kafka.consumers import read_to_end

PERIODS = {"minute": MINUTE, "hour": HOUR}


@dataclass(frozen=True, slots=True)
class WindowRow:
    start_s: float
    dimension: str
    value: str
    stats: UsageStats


async def read_windows(settings: Settings, spec: WindowSpec, *, dimension: str) -> list[WindowRow]:
    """Every window of ``spec`` kept in its changelog for ``dimension``, latest first."""
    topic = usage_changelog(settings, spec)
    parts = await _read_changelog(
        client_config(settings), [TopicPartition(topic, p) for p in range(settings.partitions)]
    )
    summed: dict[tuple[float, str], UsageStats] = {}
    for (key, start_s), stats in parts.items():
        _, key_dimension, value = split_key(key)
        if key_dimension == dimension:
            group = (start_s, value)
            summed[group] = summed[group].merged(stats) if group in summed else stats
    rows = [WindowRow(start, dimension, value, stats) for (start, value), stats in summed.items()]
    return sorted(rows, key=lambda row: (-row.start_s, row.value))


async def _read_changelog(kafka: ClientConfig, tps: list[TopicPartition]) -> dict[tuple[str, float], UsageStats]:
    latest: dict[tuple[str, float], UsageStats] = {}
    async for message in read_to_end(kafka, tps):
        key, (start_s, _end_s) = orjson.loads(message.key or b"null")
        if message.value is None:
            latest.pop((key, start_s), None)
        else:
            latest[key, start_s] = UsageStats.from_bytes(message.value)
    return latest


def format_rows(rows: list[WindowRow], *, period: str, limit: int) -> str:
    header = f"{'window (UTC)':<17} {period_label(period):<8} {'by':<6} {'value':<34} {'calls':>7} {'ok':>7} "
    header += f"{'failed':>7} {'invalid':>7} {'tok in':>9} {'tok out':>9} {'cost USD':>10} {'p50 ms':>8} {'p95 ms':>8} "
    header += f"{'p99 ms':>8}  failures by reason"
    lines = [header]
    for row in rows[:limit]:
        s = row.stats
        start = datetime.fromtimestamp(row.start_s, UTC).strftime("%Y-%m-%d %H:%M")
        cost = f"{s.cost_usd:.6f}" + ("*" if s.unpriced else "")
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(s.failures.items(), key=lambda kv: -kv[1]))
        lines.append(
            f"{start:<17} {period_label(period):<8} {row.dimension:<6} {row.value[:34]:<34} {s.calls:>7} "
            f"{s.successes:>7} {s.calls - s.successes:>7} {s.validation_failures:>7} {s.tokens_in:>9} "
            f"{s.tokens_out:>9} {cost:>10} {_ms(s.percentile_ms(0.5)):>8} {_ms(s.percentile_ms(0.95)):>8} "
            f"{_ms(s.percentile_ms(0.99)):>8}  {reasons}"
        )
    if any(row.stats.unpriced for row in rows[:limit]):
        lines.append("* includes calls to a model with no price: their cost is not counted")
    return "\n".join(lines)


def period_label(period: str) -> str:
    return "1 min" if period == "minute" else "1 hour"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
