"""`keel budget status` and `keel budget raise`: the owners' ledgers read back, and a limit raised.

Status reads the compacted ledger topic (no running worker needed) and shows, per scope, this day's and
this month's spend, open holds, limit and what is left. A raise is a request like any other, applied by
the scope's owner in order with the reservations; parked events of that scope resume once a call fits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from aiokafka import TopicPartition

from streams.apps.wiring import load_runtime
from streams.apps.worker.budget_client import BudgetClient
from streams.contracts.topics import budget_ledger_topic
from streams.core.errors import BudgetConfigError
from streams.core.ports.clock import SystemClock
from streams.core.settings import Settings
from streams.cost.budget import (
    KINDS,
    Amount,
    BudgetLimits,
    BudgetRequest,
    Decision,
    Ledger,
    Limits,
    PeriodKind,
    limits_in,
)
from streams.cost.budget import period_of as period_at
from streams.cost.budget_config import Budgets
from streams.cost.budget_records import decode_ledger
from streams.kafka.connection import client_config
from streams.kafka.consumers import read_to_end
from streams.kafka.producer import RecordProducer


@dataclass(frozen=True, slots=True)
class StatusRow:
    scope: str
    period: str
    spent: Amount
    held: Amount
    limit: Limits


async def read_ledgers(settings: Settings) -> dict[str, Ledger]:
    topic = budget_ledger_topic(settings)
    ledgers: dict[str, Ledger] = {}
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    async for message in read_to_end(client_config(settings), tps):
        if message.key is not None and message.value is not None:
            ledgers[message.key.decode()] = decode_ledger(message.value)
    return ledgers


async def settled_spend(settings: Settings, scope: str, *, quiet_s: float = 3.0, wait_s: float = 60) -> Amount:
    """What ``scope`` spent today by its ledger, once no call holds budget and nothing has changed for
    ``quiet_s`` (parked events resume whenever settled calls leave room for one more)."""
    loop = asyncio.get_running_loop()
    deadline, last, since = loop.time() + wait_s, None, loop.time()
    while loop.time() < deadline:
        ledger = (await read_ledgers(settings)).get(scope, Ledger())
        seen = (ledger.spent.get(period_at("day", int(time.time() * 1000)), Amount()), len(ledger.holds))
        if seen != last:
            last, since = seen, loop.time()
        elif seen[1] == 0 and loop.time() - since >= quiet_s:
            return seen[0]
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the budget ledger of {scope} did not settle in {wait_s:g} s: {last}")


def status_rows(ledgers: dict[str, Ledger], budgets: Budgets, *, now_ms: int) -> list[StatusRow]:
    declared = budgets.by_scope()
    rows = []
    for scope in sorted({*declared, *ledgers}):
        ledger = ledgers.get(scope, Ledger())
        for kind in KINDS:
            period = period_at(kind, now_ms)
            limit = limits_in(ledger, declared.get(scope, BudgetLimits()), period)
            spent = ledger.spent.get(period, Amount())
            rows.append(
                StatusRow(scope, period, spent, ledger.committed(period) + Amount(-spent.usd, -spent.tokens), limit)
            )
    return rows


def format_status(rows: list[StatusRow]) -> str:
    columns = ("scope", "period", "spent USD", "held USD", "limit USD", "left USD", "tokens", "limit tok")
    lines = [f"{columns[0]:<32} {columns[1]:<16} " + " ".join(f"{c:>10}" for c in columns[2:])]
    for r in rows:
        left = "-" if r.limit.usd is None else f"{r.limit.usd - r.spent.usd - r.held.usd:.6f}"
        lines.append(
            f"{r.scope:<32} {r.period:<16} {r.spent.usd:>10.6f} {r.held.usd:>10.6f} "
            f"{_or_dash(r.limit.usd):>10} {left:>10} {r.spent.tokens:>10} {_or_dash(r.limit.tokens):>10}"
        )
    return "\n".join(lines)


async def raise_budget(
    settings: Settings, scope: str, *, kind: PeriodKind, usd: float | None, tokens: int | None
) -> Decision:
    """Set this ``kind`` period's limits of ``scope`` (a limit not given keeps its value)."""
    runtime = load_runtime(settings, tools=False)
    declared = runtime.budgets.by_scope()
    if scope not in declared:
        raise BudgetConfigError(f"no budget is declared for {scope!r}; declared: {', '.join(sorted(declared)) or '-'}")
    clock = SystemClock()
    async with RecordProducer(client_config(settings)) as producer:
        client = BudgetClient(
            settings, runtime.catalogue, producer, budgets=runtime.budgets, pricing=runtime.pricing, clock=clock
        )
        request = BudgetRequest(
            "raise", uuid.uuid4().hex, scope, clock.now_ms(), limits=declared[scope], raise_kind=kind,
            raise_to=Limits(usd, tokens),
        )  # fmt: skip
        try:
            return await client.ask(request)
        finally:
            await client.stop()


def _or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
