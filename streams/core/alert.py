"""An alert: one state change of an incident, as Keel tells an on-call engineer.

The vocabulary the alert rules (streams/alerts/), the budget owner, the review SLA watch and the alert
sinks (connectors/sinks/) share; its record on ``keel.alerts`` is streams/alerts/records.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FIRING: Literal["firing"] = "firing"
RESOLVED: Literal["resolved"] = "resolved"
Status = Literal["firing", "resolved"]
Severity = Literal["critical", "error", "warning", "info"]  # PagerDuty Events v2's severities
Dimension = Literal["agent", "model", "tenant"]


@dataclass(frozen=True, slots=True)
class Alert:
    """What an on-call engineer is told. Build the key with ``dedup_key`` and the link with
    ``runbook_url`` so that every alert reads the same in Slack and PagerDuty."""

    dedup_key: str
    status: Status
    rule: str
    severity: Severity
    dimension: Dimension
    scope: str  # the dimension's value
    observed: float
    threshold: float
    unit: str  # events | ratio | ms | usd_per_hour | count | usd
    window: str  # "5m", "1h", "consecutive", ...
    summary: str
    runbook_url: str
    at_ms: int
    started_at_ms: int
    agent: str | None = None
    sample_event_ids: tuple[str, ...] = ()
    details: dict[str, str] = field(default_factory=dict)
