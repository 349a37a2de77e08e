"""Each input through each version, with ``streams.pipeline.process`` and the worker's deps.

The versions answer every input side by side, interleaved, at most ``concurrency`` calls of
``process`` at once (the deps' model slots and rate limits apply on top, as in the worker). Nothing is
written but usage records: each event's, marked with purpose ``eval`` and the run's id
(``keel.eval.run``), handed to ``sink`` as soon as the event ends, so that a run cut short still
accounts for the calls it made. Results, review items, dead letters and audit records are not made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streams.agent.definition import Agent
from streams.contracts.emit import Emitter
from streams.contracts.headers import H_EVAL_RUN
from streams.contracts.out_record import OutRecord
from streams.core.domain import SourceRecord
from streams.eval.inputs import EvalInput
from streams.eval.scores import EventRun, event_run
from streams.pipeline.decode import Decoded
from streams.pipeline.deps import Deps
from streams.pipeline.process import process

PURPOSE = "eval"
EVAL_TOPIC = "keel.eval"  # where the sources of an evaluation say they come from (nothing is read there)
UsageSink = Callable[[Sequence[OutRecord]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Contender:
    """A version in an evaluation: ``role`` baseline or candidate."""

    role: str
    version_id: str
    agent: Agent


async def run_all(
    inputs: Sequence[EvalInput],
    contenders: Sequence[Contender],
    deps: Deps,
    emitter: Emitter,
    *,
    run_id: str,
    concurrency: int,
    sink: UsageSink,
) -> dict[str, list[EventRun]]:
    """Every input through every contender: the runs by role, each in the order of ``inputs``."""
    gate = asyncio.Semaphore(max(1, concurrency))
    marks = ((H_EVAL_RUN, run_id.encode()),)

    async def one(contender: Contender, index: int, item: EvalInput) -> EventRun:
        async with gate:
            event, agent = item.event, contender.agent
            source = SourceRecord(EVAL_TOPIC, 0, index, None, event.business_key.encode(), b"")
            outcome = await process(source, agent, deps, decoded=Decoded(event.event_id, event, None, 0.0))
        values = emitter.usage_values(outcome.trace, agent, purpose=PURPOSE)
        await sink(emitter.usage_records(values, outcome.trace, agent, marks=marks))
        return event_run(outcome, values)

    tasks: dict[str, list[asyncio.Future[EventRun]]] = {contender.role: [] for contender in contenders}
    for index, item in enumerate(inputs):  # interleaved: both versions meet the provider in the same state
        for contender in contenders:
            tasks[contender.role].append(asyncio.ensure_future(one(contender, index, item)))
    try:
        await asyncio.gather(*(task for runs in tasks.values() for task in runs))
    finally:
        for runs in tasks.values():
            for task in runs:
                task.cancel()
    return {role: [task.result() for task in runs] for role, runs in tasks.items()}
