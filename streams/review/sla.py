"""Review SLAs: an agent's review queue holding an item longer than the agent declares raises an alert,
and a longer wait escalates it.

Pure: the pending items, the time, each agent's ``SlaPolicy`` and the incidents open on ``keel.alerts``
in; the ``Alert`` values to send out. Two incidents per agent, each with its own dedup key, one
``firing`` and one ``resolved`` record apiece:

- ``review_sla:agent=<name>`` (warning): the oldest pending item has waited longer than ``review_sla_s``;
  resolved once no item waits past it.
- ``review_sla:agent=<name>|escalated`` (critical): the oldest has waited longer than
  ``escalate_after_s``; resolved once none waits past that.

Escalation is a second incident rather than the first one fired again with a higher severity: a
trigger on an open dedup key is folded into the open incident (PagerDuty keeps its first severity), and
``keel.alerts`` readers take one firing per key as one incident. With two keys the critical page is a
page of its own and each level clears on its own. Both ages count from the item's creation. An open
incident of an agent with no SLA any more is resolved. Pass the incidents open after the last call
(``alert_log.open_incidents`` over what the topic holds plus what was sent), so nothing fires twice,
after a restart included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from streams.alerts.records import MAX_SAMPLES, dedup_key
from streams.core.alert import FIRING, RESOLVED, Alert, Severity, Status
from streams.review.stats import format_wait_ms

RULE = "review_sla"
ESCALATED_SUFFIX = "|escalated"


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """An agent's review SLA (its definition's ``handoff.review_sla_s`` and ``escalate_after_s``)."""

    review_sla_s: float
    escalate_after_s: float | None = None


class Waiting(Protocol):
    """A pending review item as far as the SLA is concerned (``streams.core.review_item.ReviewItem`` is one)."""

    @property
    def item_id(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def created_at_ms(self) -> int: ...


@dataclass(frozen=True, slots=True)
class _Level:
    key: str
    severity: Severity
    limit_s: float | None  # None: no such limit declared
    name: str  # "SLA" or "escalation"


def sla_dedup_key(agent: str, *, escalated: bool = False) -> str:
    return dedup_key(RULE, "agent", agent) + (ESCALATED_SUFFIX if escalated else "")


def review_sla_alerts(
    pending: Iterable[Waiting],
    *,
    now_ms: int,
    policies: Mapping[str, SlaPolicy],
    open_incidents: Iterable[Alert],
    runbook_url: str,
) -> list[Alert]:
    """The alerts to send now: a firing for each level newly passed, a resolved for each open incident
    whose level no item waits past any more."""
    waiting: dict[str, list[Waiting]] = {}
    for item in pending:
        waiting.setdefault(item.agent, []).append(item)
    opened = {alert.dedup_key: alert for alert in open_incidents if alert.rule == RULE and alert.status == FIRING}
    agents = set(policies) | {alert.scope for alert in opened.values()}
    alerts: list[Alert] = []
    for agent in sorted(agents):
        queue = sorted(waiting.get(agent, ()), key=lambda item: (item.created_at_ms, item.item_id))
        for level in _levels(agent, policies.get(agent)):
            alert = _check(agent, level, queue, opened.get(level.key), now_ms=now_ms, runbook_url=runbook_url)
            if alert is not None:
                alerts.append(alert)
    return alerts


def _levels(agent: str, policy: SlaPolicy | None) -> tuple[_Level, _Level]:
    sla_s = None if policy is None else policy.review_sla_s
    escalate_s = None if policy is None else policy.escalate_after_s
    return (
        _Level(sla_dedup_key(agent), "warning", sla_s, "SLA"),
        _Level(sla_dedup_key(agent, escalated=True), "critical", escalate_s, "escalation"),
    )


@dataclass(frozen=True, slots=True)
class _Queue:
    """One agent's queue read against one level at ``now_ms``."""

    agent: str
    level: _Level
    pending: int
    oldest_ms: int  # how long the oldest pending item has waited (0: none pending)
    late: tuple[str, ...]  # ids of the items waiting past the level, oldest first


def _check(
    agent: str, level: _Level, queue: list[Waiting], incident: Alert | None, *, now_ms: int, runbook_url: str
) -> Alert | None:
    limit_ms = None if level.limit_s is None else round(level.limit_s * 1000)
    late = [] if limit_ms is None else [item for item in queue if now_ms - item.created_at_ms > limit_ms]
    oldest_ms = max(0, now_ms - queue[0].created_at_ms) if queue else 0
    read = _Queue(agent, level, len(queue), oldest_ms, tuple(item.item_id for item in late))
    if late and incident is None and limit_ms is not None:
        summary = (
            f"review queue of {agent}: {_count(len(late))} waiting past the {format_wait_ms(limit_ms)} {level.name}, "
            f"the oldest for {format_wait_ms(oldest_ms)} ({len(queue)} pending)"
        )
        started_at_ms = late[0].created_at_ms + limit_ms
        return _alert(
            read, FIRING, limit_ms, now_ms=now_ms, summary=summary, runbook=runbook_url, started_at_ms=started_at_ms
        )
    if not late and incident is not None:
        summary = f"Resolved: no review item of {agent} waits past the {level.name} ({len(queue)} pending)"
        threshold_ms = incident.threshold if limit_ms is None else limit_ms
        return _alert(
            read,
            RESOLVED,
            threshold_ms,
            now_ms=now_ms,
            summary=summary,
            runbook=incident.runbook_url,
            started_at_ms=incident.started_at_ms,
            samples=incident.sample_event_ids,
        )
    return None


def _alert(
    read: _Queue,
    status: Status,
    threshold_ms: float,
    *,
    now_ms: int,
    summary: str,
    runbook: str,
    started_at_ms: int,
    samples: tuple[str, ...] = (),
) -> Alert:
    return Alert(
        dedup_key=read.level.key,
        status=status,
        rule=RULE,
        severity=read.level.severity,
        dimension="agent",
        scope=read.agent,
        observed=float(read.oldest_ms),
        threshold=float(threshold_ms),
        unit="ms",
        window="oldest pending",
        summary=summary,
        runbook_url=runbook,
        at_ms=now_ms,
        started_at_ms=started_at_ms,
        agent=read.agent,
        sample_event_ids=samples or read.late[:MAX_SAMPLES],
        details={
            "level": "escalated" if read.level.severity == "critical" else "sla",
            "pending": str(read.pending),
            "past_limit": str(len(read.late)),
        },
    )


def _count(n: int) -> str:
    return f"{n:,} item" + ("" if n == 1 else "s")
