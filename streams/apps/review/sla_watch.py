"""The review SLA watch in `keel review serve`: every ``KEEL_REVIEW_SLA_CHECK_S`` it asks the pure SLA
rules (streams/review/sla.py) about the pending items and writes what they say to ``keel.alerts``.
Incidents still open there when it starts are taken over, so a restart does not fire them again."""

from __future__ import annotations

import asyncio
import logging

from streams.agent.definition import Agent
from streams.alerts.records import RUNBOOK_ANCHORS, alert_record, runbook_url
from streams.core.alert import Alert
from streams.core.catalogue import Catalogue
from streams.core.ports.clock import Clock
from streams.core.settings import Settings
from streams.kafka.alert_log import open_incidents, read_alerts
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer, until_written
from streams.review.queue import ReviewQueue
from streams.review.sla import SlaPolicy, review_sla_alerts

log = logging.getLogger(__name__)


def sla_policies(agents: list[Agent]) -> dict[str, SlaPolicy]:
    """The agents that declare a review SLA (``handoff.review_sla_s``)."""
    return {
        agent.name: SlaPolicy(handoff.review_sla_s, handoff.escalate_after_s)
        for agent in agents
        if (handoff := agent.definition.handoff).review_sla_s is not None
    }


async def watch_slas(
    settings: Settings, catalogue: Catalogue, agents: list[Agent], queue: ReviewQueue, clock: Clock
) -> None:
    policies = sla_policies(agents)
    if not policies:
        return
    incidents = open_incidents(await read_alerts(settings, catalogue))
    runbook = runbook_url(settings, RUNBOOK_ANCHORS["review_sla"])
    async with RecordProducer(client_config(settings)) as producer:
        while True:
            alerts = review_sla_alerts(
                queue.waiting(),
                now_ms=clock.now_ms(),
                policies=policies,
                open_incidents=incidents,
                runbook_url=runbook,
            )
            if alerts:
                await _send(settings, catalogue, producer, alerts)
                for alert in alerts:
                    log.warning("alert %s: %s (%s)", alert.status, alert.dedup_key, alert.summary)
                incidents = open_incidents([*incidents, *alerts])
            await asyncio.sleep(settings.review_sla_check_s)


async def _send(settings: Settings, catalogue: Catalogue, producer: RecordProducer, alerts: list[Alert]) -> None:
    records = [alert_record(catalogue, settings, alert) for alert in alerts]
    await until_written(lambda: producer.send_all(records), what="review SLA alerts")
