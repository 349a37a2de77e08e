"""The canary judge in `keel aggregate`: while an agent runs a canary, it counts the audit and usage
records of the stable and canary versions since the canary started (streams/alerts/canary.py) and,
when the canary is worse beyond the stable version's policy, rolls it back: the labels record says
why (keel.agent-configs), and an alert fires with its runbook. A canary that holds for the policy's
``promote_after_s`` is promoted.

It follows ``keel.agent-configs`` for the labels and reads every partition of ``keel.audit`` and
``keel.usage`` with a consumer of its own (no group: every aggregator sees every version's records),
from the canary's start. Two aggregators may both act on one verdict: they write the same labels
change, and the alert has one dedup key. A record it cannot read is passed over and counted."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.agent.versions import Change, Labels, promoted, rolled_back
from streams.alerts.canary import ArmStats, Verdict, judge, runs
from streams.alerts.records import RUNBOOK_ANCHORS, alert_record, dedup_key, runbook_url
from streams.apps.faust_app import exit_for_restart
from streams.contracts.agent_configs import ConfigLog, Entry, labels_records
from streams.contracts.headers import H_CONFIG_VERSION
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import AUDIT, USAGE
from streams.core import wire
from streams.core.alert import Alert
from streams.core.catalogue import Catalogue
from streams.core.errors import DecodeError
from streams.core.settings import Settings
from streams.kafka.agent_configs import ConfigFeed
from streams.kafka.connection import client_config
from streams.kafka.consumers import until_read
from streams.kafka.producer import RecordProducer, until_written
from streams.kafka.skipped import SkippedRecords

log = logging.getLogger(__name__)
READER = "canary-judge"
AUTHOR = "keel aggregate"
RULE = "canary_rollback"


@dataclass
class Canary:
    labels: Labels
    stable: ArmStats = field(default_factory=ArmStats)
    canary: ArmStats = field(default_factory=ArmStats)

    def arm(self, config_version: str) -> ArmStats | None:
        if runs(config_version, self.labels.stable):
            return self.stable
        return self.canary if self.labels.canary and runs(config_version, self.labels.canary) else None


class CanaryJudge:
    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        producer: RecordProducer,
        skipped: SkippedRecords,
        *,
        interval_s: float = 1.0,
    ) -> None:
        self._settings, self._catalogue, self._producer, self._skipped = settings, catalogue, producer, skipped
        self._interval_s = interval_s
        self._log = ConfigLog()
        self._canaries: dict[str, Canary] = {}
        self._reseek = asyncio.Event()
        self._feed = ConfigFeed(client_config(settings), catalogue, settings, self._take, skipped)
        names = (settings.topic(AUDIT), settings.topic(USAGE))
        self._tps = [TopicPartition(name, p) for name in names for p in range(settings.partitions)]
        self._audit = settings.topic(AUDIT)

    def _take(self, entry: Entry) -> None:
        self._log.apply(entry)
        if not isinstance(entry, Labels):
            return
        running = self._canaries.get(entry.agent)
        if entry.canary is None:
            self._canaries.pop(entry.agent, None)
        elif running is None or (running.labels.canary, running.labels.at_ms) != (entry.canary, entry.at_ms):
            self._canaries[entry.agent] = Canary(entry)  # counted afresh from its start
            self._reseek.set()

    async def run(self) -> None:
        await self._feed.start()
        consumer = AIOKafkaConsumer(**client_config(self._settings).kwargs(), enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(self._tps)
            await consumer.seek_to_end(*self._tps)
            next_verdict = time.monotonic()
            while True:
                if self._feed.following is not None and self._feed.following.done():
                    self._feed.following.result()  # it failed: so does the judge (crash-only)
                if self._reseek.is_set():
                    self._reseek.clear()
                    await self._seek(consumer)
                batch = await until_read(lambda: consumer.getmany(timeout_ms=500), what="the audit and usage topics")
                for messages in batch.values():
                    for message in messages:
                        self._count(message)
                if time.monotonic() >= next_verdict:
                    next_verdict = time.monotonic() + self._interval_s
                    await self._judge_all()
        finally:
            await consumer.stop()
            await self._feed.stop()

    async def _seek(self, consumer: AIOKafkaConsumer) -> None:
        """Back to the oldest running canary's start; every canary is counted again from there."""
        for canary in self._canaries.values():
            canary.stable, canary.canary = ArmStats(), ArmStats()
        if not self._canaries:
            return
        since = min(c.labels.at_ms for c in self._canaries.values())
        found = await until_read(lambda: consumer.offsets_for_times(dict.fromkeys(self._tps, since)), what="offsets")
        ends = await until_read(lambda: consumer.end_offsets(self._tps), what="the ends")
        for tp in self._tps:
            consumer.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp])

    def _count(self, message: Any) -> None:
        try:
            if message.topic == self._audit:
                value = wire.decode(self._catalogue, message.value or b"", subject="keel.audit-value")
                config_version = value["config_version"]
            else:
                value = wire.decode(self._catalogue, message.value or b"", subject="keel.usage-value")
                headers = dict(message.headers or ())
                config_version = (headers.get(H_CONFIG_VERSION) or b"").decode("utf-8", "replace")
        except DecodeError as exc:
            self._skipped.skip(READER, message, exc)
            return
        canary = self._canaries.get(value["agent"])
        arm = canary.arm(config_version) if canary is not None and message.timestamp >= canary.labels.at_ms else None
        if arm is None:
            return
        if message.topic == self._audit:
            arm.add_audit(value["event_id"], value["outcome"], float(value["total_ms"]), value.get("review_action"))
        else:
            arm.add_usage(value["outcome"], value["purpose"], value.get("cost_usd"))

    async def _judge_all(self) -> None:
        now_ms = int(time.time() * 1000)
        for agent, canary in list(self._canaries.items()):
            stable = self._log.versions.get(agent, {}).get(canary.labels.stable)
            if stable is None:
                continue
            policy = stable.definition.canary
            verdict = judge(canary.stable, canary.canary, policy)
            held = policy.promote_after_s is not None and now_ms - canary.labels.at_ms >= policy.promote_after_s * 1000
            if verdict.roll_back:
                await self._write(self._rollback(canary, verdict, now_ms))
            elif verdict.enough and held:
                why = f"automatic promotion: the canary held for {policy.promote_after_s:g} s"
                labels = promoted(canary.labels, agent, canary.labels.canary or "", Change(AUTHOR, now_ms, why),
                                  canary_percent=None)  # fmt: skip
                log.warning("%s: %s; %s is stable", agent, why, labels.stable)
                await self._write(labels_records(self._catalogue, self._settings, labels))
            else:
                continue
            self._canaries.pop(agent, None)  # the labels change ends it; the feed brings it back if it was not written

    def _rollback(self, canary: Canary, verdict: Verdict, now_ms: int) -> list[OutRecord]:
        agent, labels = canary.labels.agent, canary.labels
        why = "; ".join(verdict.worse)
        log.warning("%s: canary %s is worse than stable %s, rolled back: %s", agent, labels.canary, labels.stable, why)
        ended = rolled_back(labels, agent, Change(AUTHOR, now_ms, f"automatic rollback: {why}"), to=None)
        alert = Alert(
            dedup_key=f"{dedup_key(RULE, 'agent', agent)}|{labels.canary}",
            status="firing",
            rule=RULE,
            severity="error",
            dimension="agent",
            scope=agent,
            observed=float(len(verdict.worse)),
            threshold=1.0,
            unit="criteria",
            window=f"since {labels.at_ms}",
            summary=f"canary {labels.canary} of {agent} rolled back to stable {labels.stable}: {why}",
            runbook_url=runbook_url(self._settings, RUNBOOK_ANCHORS[RULE]),
            at_ms=now_ms,
            started_at_ms=labels.at_ms,
            agent=agent,
            details={"canary": labels.canary or "", "stable": labels.stable, "reasons": why,
                     "canary_events": str(canary.canary.events), "stable_events": str(canary.stable.events)},
        )  # fmt: skip
        return [
            *labels_records(self._catalogue, self._settings, ended),
            alert_record(self._catalogue, self._settings, alert),
        ]

    async def _write(self, records: list[OutRecord]) -> None:
        await until_written(lambda: self._producer.send_all(records), what="the canary's labels and alert")


def add_canary_judge(app: Any, settings: Settings, catalogue: Catalogue, skipped: SkippedRecords) -> None:
    """The judge as a task of the aggregator's faust app, crash-only like its other readers."""
    producer = RecordProducer(client_config(settings), request_timeout_s=settings.produce_timeout_s)
    judge_ = CanaryJudge(settings, catalogue, producer, skipped, interval_s=settings.alert_eval_interval_s)

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def judge_canaries() -> None:
        try:
            await judge_.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # crash-only: a supervisor restarts the aggregator
            exit_for_restart("the canary judge failed", exc)

    async def stop_producer(_sender: Any, **_: Any) -> None:
        await producer.stop()

    app.on_before_shutdown.connect(stop_producer)
