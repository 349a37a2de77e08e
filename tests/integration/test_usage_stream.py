"""The aggregation stream on the real broker: windows, out-of-order and late records, restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from harness import Stack, aggregator, committed_offsets, run_through, worker_stack

from streams.cli.local_stack import simulator_process
from streams.cli.usage_report import WindowRow, read_windows
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import usage_app_id
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.cost.usage_windows import HOUR, MINUTE, WindowSpec
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer


def usage_value(agent: str, *, at_ms: int, outcome: str = "ok", cost: float | None = 0.001) -> dict[str, object]:
    return {
        "event_id": f"e-{at_ms}",
        "agent": agent,
        "agent_version": "1",
        "tenant": "acme",
        "provider": "sim",
        "model": "m",
        "model_version": "m-1",
        "attempt": 1,
        "purpose": "initial",
        "tokens_in": 100,
        "tokens_out": 10,
        "latency_ms": 400.0,
        "outcome": outcome,
        "at": at_ms,
        "cost_usd": cost,
        "price_version": "v" if cost is not None else None,
    }


async def publish_usage(stack: Stack, catalogue: Catalogue, values: list[dict[str, object]]) -> None:
    """In order, into one partition, each record timestamped with its ``at``."""
    schema = catalogue.by_subject("keel.usage-value")
    topic = stack.topic("keel.usage")
    async with RecordProducer(client_config(stack.settings)) as producer:
        for value in values:  # one at a time: the order within the partition is the test's
            record = OutRecord(topic, b"k", wire.encode(schema, value), (), 0, timestamp_ms=int(value["at"]))  # type: ignore[call-overload]
            await producer.send_all([record])


async def windows_until(
    stack: Stack, spec: WindowSpec, value: str, calls: int, *, dimension: str = "agent", wait_s: float = 60
) -> dict[float, WindowRow]:
    """The windows of one agent, once their calls add up to ``calls`` (or the wait runs out)."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = {r.start_s: r for r in await read_windows(stack.settings, spec, dimension=dimension) if r.value == value}
        if sum(r.stats.calls for r in rows.values()) >= calls or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1)


async def test_windows_count_what_the_usage_records_say(kafka_bootstrap: str, tmp_path: Path, make_event) -> None:
    events = [make_event(payload={"ticket_id": f"T-{i}", "body": "Charged twice"}) for i in range(10)]
    with (
        simulator_process(tmp_path, "--seed", "3") as sim_url,
        worker_stack(kafka_bootstrap, tmp_path, provider="sim", base_url=sim_url) as stack,
        aggregator(stack),
    ):
        ids, tally = await run_through(stack, events={"support.tickets": events})
        usage = [r.value for i in ids for r in tally.by_kind["usage"].get(i, ())]
        minutes = await windows_until(stack, MINUTE, "support_triage", len(usage))
        hours = await windows_until(stack, HOUR, "support_triage", 12 * len(usage))  # hopping: 12 windows each
    total = minutes[min(minutes)].stats
    for row in list(minutes.values())[1:]:
        total = total.merged(row.stats)
    assert total.calls == len(usage) and total.tokens_in == sum(u["tokens_in"] for u in usage)
    assert total.cost_usd == pytest.approx(sum(u["cost_usd"] for u in usage))
    assert total.successes == sum(u["outcome"] == "ok" for u in usage) and total.unpriced == 0
    assert total.percentile_ms(0.5) is not None
    assert max(row.stats.calls for row in hours.values()) == len(usage)  # one hour window holds them all


async def test_out_of_order_records_land_in_their_window_and_late_ones_are_left_out(
    kafka_bootstrap: str, tmp_path: Path, catalogue: Catalogue
) -> None:
    t0 = (int(time.time()) // 60 - 30) * 60 * 1000  # a minute boundary, half an hour ago
    values = [
        usage_value("probe", at_ms=t0),
        usage_value("probe", at_ms=t0 + 70_000, outcome="output_not_json"),  # the next minute
        usage_value("probe", at_ms=t0 + 10_000, cost=None),  # out of order, within the lateness: counted
        usage_value("probe", at_ms=t0 + 600_000),  # ten minutes on
        usage_value("probe", at_ms=t0 + 20_000),  # 580 s behind the latest: later than the 300 s allowed
    ]
    with (
        worker_stack(kafka_bootstrap, tmp_path, provider="sim", base_url="http://127.0.0.1:9/v1", start=False) as stack,
        aggregator(stack),
    ):
        await publish_usage(stack, catalogue, values)
        windows = await windows_until(stack, MINUTE, "probe", 4)
        await asyncio.sleep(3)  # the late record has been read by now: it must not have changed anything
        windows = await windows_until(stack, MINUTE, "probe", 4, wait_s=0)
    by_start = {start - t0 / 1000: row.stats for start, row in windows.items()}
    assert sorted(by_start) == [0, 60, 600]
    first = by_start[0]
    assert (first.calls, first.successes, first.unpriced) == (2, 2, 1)
    assert first.cost_usd == pytest.approx(0.001)  # the unpriced call adds nothing, and is flagged
    assert (by_start[60].calls, by_start[60].validation_failures, by_start[60].failures) == (
        1,
        1,
        {"output_not_json": 1},
    )
    assert by_start[600].calls == 1


async def test_a_restarted_worker_does_not_count_redelivered_records_twice(
    kafka_bootstrap: str, tmp_path: Path, catalogue: Catalogue
) -> None:
    now_ms = int(time.time() * 1000)
    values = [usage_value("restart_probe", at_ms=now_ms - 1000 * i) for i in range(30, 0, -1)]
    with worker_stack(
        kafka_bootstrap, tmp_path, provider="sim", base_url="http://127.0.0.1:9/v1", start=False
    ) as stack:
        with aggregator(stack, KEEL_COMMIT_INTERVAL_S="120") as first:  # so that records are read again
            await publish_usage(stack, catalogue, values)
            before = await windows_until(stack, MINUTE, "restart_probe", 30)
            first.kill()  # -9: no commit on the way out
            first.wait()
        committed, ends = await committed_offsets(stack, "keel.usage", group=usage_app_id(stack.settings), wait_s=0.5)
        [usage_tp] = [tp for tp, end in ends.items() if end]
        assert committed.get(usage_tp, -1) < ends[usage_tp]  # some records will be read again
        with aggregator(stack, KEEL_COMMIT_INTERVAL_S="1"):
            for _ in range(120):  # the restarted worker waits for the killed one's session to expire
                committed, ends = await committed_offsets(
                    stack, "keel.usage", group=usage_app_id(stack.settings), wait_s=0.5
                )
                if committed.get(usage_tp, -1) == ends[usage_tp]:
                    break
                await asyncio.sleep(0.5)
            assert committed.get(usage_tp, -1) == ends[usage_tp]  # read again, and committed this time
            after = await windows_until(stack, MINUTE, "restart_probe", 30, wait_s=0)
    assert sum(r.stats.calls for r in before.values()) == 30
    assert sum(r.stats.calls for r in after.values()) == 30
