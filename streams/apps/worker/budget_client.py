"""The worker's side of budgets: reserve before a call, settle after it, probe for parked events.

Each request goes to ``keel.budget.requests`` keyed by its scope, and so to the one worker that owns
the scope (streams/apps/worker/budget_owner.py); the answer comes back on the ``keel.budget.decisions`` partition
this worker reads. A request not answered in time (its owner moved in a rebalance, or restarted) is
sent again with the same id: the owner answers a reservation it already holds the same way.

The reader of the decisions partition passes over (and counts, ``keel_records_skipped_total``) a record
that is not a decision, reads through transient Kafka errors, and ends the worker (exit 70) on any
other: without it no reservation would ever be answered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.agent.definition import Agent, ModelSpec
from streams.agent.prompt import render_prompt
from streams.apps import faust_app
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import BUDGET_DECISIONS, BUDGET_REQUESTS
from streams.core.catalogue import Catalogue
from streams.core.domain import Attempt, RequestEvent
from streams.core.errors import DecodeError
from streams.core.ports.clock import Clock
from streams.core.ports.model import max_output_tokens
from streams.core.settings import Settings
from streams.cost.budget import Amount, BudgetRequest, Decision, Reservation
from streams.cost.budget_config import Budgets, Scope
from streams.cost.budget_records import BudgetCodec
from streams.cost.pricing import Pricing
from streams.kafka.connection import client_config
from streams.kafka.consumers import until_read
from streams.kafka.producer import RecordProducer, until_written
from streams.kafka.skipped import SkippedRecords

log = logging.getLogger(__name__)
READER = "budget-client"
CHARS_PER_TOKEN_AT_MOST = 2  # a token is rarely shorter than this: input tokens are not underestimated
TOKENS_PER_MESSAGE = 8  # the chat template's own tokens
DEFAULT_MAX_OUTPUT_TOKENS = 4096  # reserved for a model whose parameters set no max_tokens


def call_maximum(spec: ModelSpec, pricing: Pricing, *, prompt_chars: int, messages: int) -> Amount:
    """What one call can cost at most: its prompt at two characters a token, and its whole output
    allowance (``max_tokens``). A model without a price costs nothing here (its agent has no USD
    budget: streams/cost/budget_config.py refuses that)."""
    tokens_in = prompt_chars // CHARS_PER_TOKEN_AT_MOST + TOKENS_PER_MESSAGE * messages
    tokens_out = max_output_tokens(spec.parameters) or DEFAULT_MAX_OUTPUT_TOKENS
    cost = pricing.cost(spec.provider, spec.model, tokens_in=tokens_in, tokens_out=tokens_out)
    return Amount(cost.usd or 0.0, tokens_in + tokens_out)


def first_call_maximum(agent: Agent, event: RequestEvent, pricing: Pricing) -> Amount:
    """The maximum of the event's first call: its rendered prompt to the first model of the chain."""
    prompt = render_prompt(agent.templates, event)
    spec = agent.definition.model_chain[0]
    return call_maximum(spec, pricing, prompt_chars=prompt.chars, messages=len(prompt.messages))


class BudgetClient:
    """Implements ``streams.pipeline.deps.BudgetGate`` for the worker; ``ask`` serves `keel budget` too."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        producer: RecordProducer,
        *,
        budgets: Budgets,
        pricing: Pricing,
        clock: Clock,
        skipped: SkippedRecords | None = None,
    ) -> None:
        self._settings, self._producer, self._budgets = settings, producer, budgets
        self._skipped = skipped or SkippedRecords()
        self._pricing, self._clock, self._codec = pricing, clock, BudgetCodec(catalogue)
        self._requests, self._decisions = settings.topic(BUDGET_REQUESTS), settings.topic(BUDGET_DECISIONS)
        self._reply_partition = random.randrange(settings.partitions)  # noqa: S311  (spreading, not secrets)
        self._waiting: dict[str, asyncio.Future[Decision]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Lock | None = None
        self._settling: set[asyncio.Task[object]] = set()

    def applies(self, agent: str, tenant: str | None) -> bool:
        return bool(self._budgets.scopes(agent, tenant))

    async def reserve(
        self, agent: str, tenant: str | None, spec: ModelSpec, *, prompt_chars: int, messages: int, expires_in_s: float
    ) -> Reservation:
        """Hold the call's maximum in every scope at once; if any refuses, let go of the others."""
        amount = call_maximum(spec, self._pricing, prompt_chars=prompt_chars, messages=messages)
        now_ms = self._clock.now_ms()
        expires_ms = now_ms + int(expires_in_s * 1000)
        scopes = self._budgets.scopes(agent, tenant)
        requests = [
            BudgetRequest("reserve", uuid.uuid4().hex, scope, now_ms, amount, limits, expires_ms)
            for scope, limits in scopes
        ]
        decisions = await asyncio.gather(*(self.ask(request) for request in requests))
        holds = tuple((r.scope, r.request_id, r.limits) for r in requests)
        refusal = next((d for d in decisions if not d.granted), None)
        if refusal is None:
            return Reservation(holds, amount=amount)
        granted = Reservation(tuple(h for h, d in zip(holds, decisions, strict=True) if d.granted))
        self._send_later(granted, "release", Amount())
        return Reservation(refusal=refusal)

    def settle(self, reservation: Reservation, attempt: Attempt) -> None:
        """Sent without waiting: a settlement that never arrives leaves the hold to count in full."""
        cost = self._pricing.attempt_cost(attempt)
        self._send_later(reservation, "settle", Amount(cost.usd or 0.0, attempt.tokens_in + attempt.tokens_out))

    def abandon(self, reservation: Reservation) -> None:
        """The call was cut short (its event cancelled by a rebalance or shutdown): it may have been
        paid for, so its holds are settled in full at once rather than when they expire."""
        self._send_later(reservation, "settle", reservation.amount)

    def release(self, reservation: Reservation) -> None:
        self._send_later(reservation, "release", Amount())

    async def probe(self, scopes: Sequence[Scope], amount: Amount) -> Decision | None:
        """The first refusal a call of ``amount`` would meet now, or None: it would fit."""
        now_ms = self._clock.now_ms()
        requests = [BudgetRequest("probe", uuid.uuid4().hex, scope, now_ms, amount, limits) for scope, limits in scopes]
        decisions = await asyncio.gather(*(self.ask(request) for request in requests))
        return next((d for d in decisions if not d.granted), None)

    async def wait_for_room(self, agent: Agent, event: RequestEvent, *, until_ms: int) -> None:
        """Until a call like the event's first fits every budget it falls under, or ``until_ms`` (the
        end of the period that was full) passes; asking every ``budget_resume_poll_s``."""
        amount = first_call_maximum(agent, event, self._pricing)
        scopes = self._budgets.scopes(agent.name, event.tenant)
        while (left_ms := until_ms - self._clock.now_ms()) > 0:
            refusal = await self.probe(scopes, amount)
            if refusal is None:
                return
            until_ms = max(until_ms, refusal.until_ms)  # another period may be the full one now
            await self._clock.sleep(min(self._settings.budget_resume_poll_s, left_ms / 1000))

    async def ask(self, request: BudgetRequest) -> Decision:
        """Send ``request`` and wait for its owner's answer, sending it again while none comes."""
        await self._start()
        future = self._waiting[request.request_id] = asyncio.get_running_loop().create_future()
        value = self._codec.encode_request(request, reply_partition=self._reply_partition)
        record = OutRecord(self._requests, request.scope.encode(), value, ())
        try:
            while True:
                await until_written(lambda: self._producer.send_all([record]), what="a budget request")
                try:
                    async with asyncio.timeout(self._settings.budget_answer_timeout_s):
                        return await asyncio.shield(future)
                except TimeoutError:
                    log.warning("no answer from the budget owner of %s yet; asking again", request.scope)
        finally:
            self._waiting.pop(request.request_id, None)

    async def stop(self) -> None:
        if self._settling:
            await asyncio.wait(self._settling, timeout=5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def _send_later(self, reservation: Reservation, kind: Literal["settle", "release"], amount: Amount) -> None:
        if not reservation.holds:
            return
        now_ms = self._clock.now_ms()
        records = [
            OutRecord(
                self._requests,
                scope.encode(),
                self._codec.encode_request(
                    BudgetRequest(kind, request_id, scope, now_ms, amount, limits), reply_partition=-1
                ),
                (),
            )
            for scope, request_id, limits in reservation.holds
        ]
        task = asyncio.create_task(until_written(lambda: self._producer.send_all(records), what=f"a budget {kind}"))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _start(self) -> None:
        """The reader of this worker's decision partition, positioned at its end before any request."""
        self._ready = self._ready or asyncio.Lock()
        async with self._ready:
            if self._reader is not None:
                return
            consumer = self._consumer()
            await consumer.start()
            tp = TopicPartition(self._decisions, self._reply_partition)
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
            await consumer.position(tp)
            self._reader = asyncio.create_task(self._read(consumer, tp), name="budget-decisions")
            self._reader.add_done_callback(faust_app.exit_when_failed("reading budget decisions failed"))

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(**client_config(self._settings).kwargs(), enable_auto_commit=False)

    async def _read(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        try:
            while True:
                batch = await until_read(lambda: consumer.getmany(tp, timeout_ms=1000), what="budget decisions")
                for message in batch.get(tp, []):
                    self._answer(message)
        finally:
            await consumer.stop()

    def _answer(self, message: Any) -> None:
        try:
            decision = self._codec.decode_decision(message.value or b"")
        except DecodeError as exc:
            self._skipped.skip(READER, message, exc)
            return
        future = self._waiting.get(decision.request_id)
        if future is not None and not future.done():  # others are answers to other workers
            future.set_result(decision)
