"""Concurrency on the real broker: events of one key run in order, other keys overlap, and the
committed offsets reach the end only once every event has ended, also when a rebalance moves
partitions mid-stream."""

from __future__ import annotations

import contextlib
import itertools
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import (
    Stack,
    assert_exactly_one_outcome_and_audit,
    assert_one_effective_outcome_and_audit,
    committed_offsets,
    run_through,
    worker_stack,
)

from streams.cli.local_stack import simulator_process, worker_process
from streams.cli.watch import Tally

KEYS, PER_KEY = 4, 8


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("keel-state")
    with (
        simulator_process(state_dir, "--seed", "4", "--latency-ms", "150") as sim_url,
        worker_stack(
            kafka_bootstrap, state_dir, provider="sim", base_url=sim_url, concurrency={"max_in_flight": 16}
        ) as stack,
    ):
        yield stack


async def test_one_key_runs_in_order_while_keys_overlap_and_commits_wait_for_the_slowest(
    stack: Stack, make_event
) -> None:
    events = [
        make_event(business_key=f"CUST-{k}", payload={"ticket_id": f"T-{k}-{n}", "body": f"Question {n}"})
        for n in range(PER_KEY)
        for k in range(KEYS)
    ]
    ids, tally = await run_through(stack, events={"support.tickets": events})
    assert_exactly_one_outcome_and_audit(ids, tally)
    spans: dict[str, list[tuple[int, float, float]]] = defaultdict(list)  # key -> (offset, start, end)
    for event in events:
        [audit] = tally.by_kind["audit"][event.event_id]
        start = audit.value["received_at"]
        start_ms = start.timestamp() * 1000 if hasattr(start, "timestamp") else float(start)
        spans[event.business_key].append((audit.value["input_offset"], start_ms, start_ms + audit.value["total_ms"]))
    for key, runs in spans.items():
        runs.sort()
        for (_, _, earlier_end), (_, later_start, _) in itertools.pairwise(runs):
            assert later_start >= earlier_end - 1, f"{key}: an event started before the one before it ended"
    starts = sorted((start, end, key) for key, runs in spans.items() for _, start, end in runs)
    overlapping = sum(1 for (s1, e1, k1), (s2, _, k2) in itertools.pairwise(starts) if k1 != k2 and s2 < e1)
    assert overlapping >= PER_KEY  # other keys ran meanwhile: 32 events of 150 ms did not run one by one
    committed, ends = await committed_offsets(stack, "support.tickets")
    assert committed == ends


async def test_a_worker_joining_mid_stream_takes_partitions_and_every_event_still_ends_once(
    stack: Stack, make_event, tmp_path: Path
) -> None:
    events = [
        make_event(business_key=f"CUST-{n % 64}", payload={"ticket_id": f"T-{n}", "body": f"Question {n}"})
        for n in range(900)
    ]
    ids = [event.event_id for event in events]
    second = stack.settings.model_copy(update={"state_dir": tmp_path})  # a log of its own
    second_log = tmp_path / "logs" / f"worker-{second.namespace}.log"
    ended_when_it_joined: list[int] = []

    with contextlib.ExitStack() as workers:

        def second_worker_joins(tally: Tally) -> None:
            ended = sum(1 for i in ids if tally.ended(i))
            if not second_log.exists():
                if ended >= 50:
                    workers.enter_context(worker_process(second, stack.worker_env))
            elif not ended_when_it_joined and stack.topic("support.tickets") in second_log.read_text():
                ended_when_it_joined.append(ended)  # it reads partitions of the input topic now

        _, tally = await run_through(stack, events={"support.tickets": events}, during=second_worker_joins)
    # A rebalance may make an event's recorded records appear twice (its offset was not committed when
    # its partition moved, and the new owner re-emits them); it never makes a second decision.
    duplicates = assert_one_effective_outcome_and_audit(ids, tally)
    print(f"physical duplicates during the rebalance: {duplicates} of {len(ids)} events' records")
    assert tally.summary(ids)["results"] == len(ids)
    [ended] = ended_when_it_joined
    assert ended < len(ids), "the second worker took its partitions while events were still running"
    committed, ends = await committed_offsets(stack, "support.tickets")
    assert committed == ends
