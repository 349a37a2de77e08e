"""The review service: the ``ReviewService`` port over the queue, the feed and the decisions topic.

A decision is checked against the queue (streams/review/decide.py), written to ``keel.review.decisions``
and then read back by the feed before it is answered: the log, not this process, says which decision
on an item came first, so two services deciding one item at once agree on the winner and the loser is
refused. Within one process a second decision on an item whose first is still being written is refused
at once, before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from streams.agent.definition import Agent
from streams.apps.review.feed import ReviewFeed
from streams.contracts.topics import REVIEW_DECISIONS, agent_topics
from streams.core.catalogue import Catalogue
from streams.core.errors import KeelError
from streams.core.ports.clock import wall_clock_ms
from streams.core.review_item import Decision, DecisionDraft, ItemState, Page, Refused
from streams.core.settings import Settings
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer, until_written
from streams.kafka.skipped import SkippedRecords
from streams.review.decide import accept
from streams.review.queue import ReviewQueue
from streams.review.records import decision_record

log = logging.getLogger(__name__)


class DecisionNotWritten(KeelError):
    """The broker did not take a decision in time; the reviewer may send it again."""

    reason = "decision_not_written"
    retriable = True


class KafkaReviewService:
    """One per `keel review serve`; ``start`` loads the queue, ``stop`` ends the feed and the producer."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        agents: list[Agent],
        *,
        skipped: SkippedRecords | None = None,
    ) -> None:
        """``skipped``: where the feed counts the records it passes over (the process's metrics)."""
        self._settings, self.catalogue = settings, catalogue
        self._agents = {agent.name: agent for agent in agents}
        self._schemas = {agent.name: agent.output_schema.raw for agent in agents}
        self.decisions_topic = settings.topic(REVIEW_DECISIONS)
        self.queue = ReviewQueue()
        self.feed = ReviewFeed(
            client_config(settings),
            catalogue,
            self.queue,
            review_topics=[agent_topics(agent, settings).review for agent in agents],
            decisions_topic=self.decisions_topic,
            partitions=settings.partitions,
            skipped=skipped,
        )
        self._producer = RecordProducer(client_config(settings), request_timeout_s=settings.produce_timeout_s)
        self._deciding: set[str] = set()

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()
        await self._producer.stop()

    def agents(self) -> list[str]:
        return sorted(self._agents)

    def agent(self, name: str) -> Agent | None:
        return self._agents.get(name)

    def pending(self, *, agents: frozenset[str] | None, min_age_s: float = 0, offset: int = 0, limit: int = 50) -> Page:
        return self.queue.pending(
            agents=agents, min_age_s=min_age_s, offset=offset, limit=limit, now_ms=wall_clock_ms()
        )

    def get(self, item_id: str) -> ItemState | None:
        return self.queue.get(item_id)

    async def decide(self, draft: DecisionDraft) -> Decision:
        state = self.queue.get(draft.item_id)
        decision = accept(draft, state, self._schemas, decision_id=uuid.uuid4().hex, now_ms=wall_clock_ms())
        if draft.item_id in self._deciding:  # checked and set with no await in between
            raise Refused("already_decided", f"{draft.item_id}: another decision on it is being written")
        self._deciding.add(draft.item_id)
        try:
            partition, offset = await self._write(decision)
            read_back = await self.feed.reached(
                self.feed.decisions_partition(partition), offset + 1, timeout_s=self._settings.review_readback_s
            )
        finally:
            self._deciding.discard(draft.item_id)
        if not read_back:  # the feed lags: the decision is written, so it is the queue's until the feed says
            log.warning("decision %s on %s not read back yet; recorded as written", decision.decision_id, draft.item_id)
            self.queue.record(decision)
        first = self.queue.get(draft.item_id)
        if first is not None and first.decision is not None and first.decision.decision_id != decision.decision_id:
            raise Refused("already_decided", f"{draft.item_id} was decided first by {first.decision.reviewer}")
        return decision

    async def _write(self, decision: Decision) -> tuple[int, int]:
        record = decision_record(self.catalogue, self.decisions_topic, decision)
        try:
            async with asyncio.timeout(self._settings.review_write_timeout_s):
                landed = await until_written(
                    lambda: self._producer.send_all([record]), what=f"review decision on {decision.item_id}"
                )
        except TimeoutError as exc:
            raise DecisionNotWritten(
                f"the decision on {decision.item_id} was not written within {self._settings.review_write_timeout_s} s"
            ) from exc
        _, partition, offset = landed[0]
        return partition, offset
