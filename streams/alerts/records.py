"""Alerts: one state change of an incident, and its record on ``keel.alerts``.

Anything in Keel that notices a problem publishes it the same way: build an ``Alert`` and send
``alert_record(catalogue, settings, alert)``. `keel aggregate` does it for the in-stream rules
(streams/alerts/engine.py); the budget owner does it for budget thresholds. `keel alerts relay` sends
every record to the configured sinks (Slack, a PagerDuty-style webhook). An incident is one
``firing`` record, then one ``resolved`` record with the same ``dedup_key``.
"""

from __future__ import annotations

from typing import Any

from streams.contracts.headers import H_AGENT
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import ALERTS
from streams.core import wire
from streams.core.alert import FIRING, RESOLVED, Alert
from streams.core.catalogue import Catalogue
from streams.core.settings import Settings

SUBJECT = "keel.alerts-value"
H_ALERT_RULE = "keel.alert.rule"
H_ALERT_STATUS = "keel.alert.status"
MAX_SAMPLES = 5

# The anchor of each rule's runbook in docs/runbooks.md; `budget` is raised by budgets,
# `review_sla` by the review service (streams/review/sla.py).
RUNBOOK_ANCHORS = {
    "consecutive_failures": "runbook-consecutive-failures",
    "error_rate": "runbook-error-rate",
    "cost_spike": "runbook-cost-spike",
    "budget": "runbook-budget",
    "validation_failure_rate": "runbook-validation-failures",
    "latency": "runbook-latency",
    "dead_letters": "runbook-dead-letters",
    "circuit_open": "runbook-circuit-open",
    "model_version_changed": "runbook-model-version-changed",
    "unpriced_model": "runbook-unpriced-model",
    "review_sla": "runbook-review-sla",
    "canary_rollback": "runbook-canary-rollback",
}


def dedup_key(rule: str, dimension: str, scope: str) -> str:
    """``error_rate:agent=support_triage``: one open incident per rule and scope at a time."""
    return f"{rule}:{dimension}={scope}"


def runbook_url(settings: Settings, anchor: str) -> str:
    """A link to a runbook: an anchor of docs/runbooks.md (``runbook-budget``) under the configured base,
    or a full URL kept as it is."""
    if "://" in anchor:
        return anchor
    return f"{settings.alert_runbook_base_url}#{anchor}"


def alert_record(catalogue: Catalogue, settings: Settings, alert: Alert) -> OutRecord:
    """The ``keel.alerts`` record of ``alert``: keyed by its dedup key (its firing and its resolved
    land in one partition, in order), timestamped with ``at_ms``."""
    headers: list[tuple[str, bytes | None]] = [
        (H_ALERT_RULE, alert.rule.encode()),
        (H_ALERT_STATUS, alert.status.encode()),
    ]
    if alert.agent is not None:
        headers.append((H_AGENT, alert.agent.encode()))
    value = wire.encode(catalogue.by_subject(SUBJECT), alert_value(alert))
    return OutRecord(settings.topic(ALERTS), alert.dedup_key.encode(), value, tuple(headers), timestamp_ms=alert.at_ms)


def alert_value(alert: Alert) -> dict[str, Any]:
    return {
        "dedup_key": alert.dedup_key,
        "status": alert.status,
        "rule": alert.rule,
        "severity": alert.severity,
        "agent": alert.agent,
        "dimension": alert.dimension,
        "scope": alert.scope,
        "observed": float(alert.observed),
        "threshold": float(alert.threshold),
        "unit": alert.unit,
        "window": alert.window,
        "sample_event_ids": list(alert.sample_event_ids[:MAX_SAMPLES]),
        "runbook_url": alert.runbook_url,
        "summary": alert.summary,
        "details": dict(alert.details),
        "at_ms": alert.at_ms,
        "started_at_ms": alert.started_at_ms,
    }


def decode_alert(catalogue: Catalogue, data: bytes) -> Alert:
    """A ``keel.alerts`` value back as an ``Alert`` (raises ``DecodeError`` for anything else)."""
    value = wire.decode(catalogue, data, subject=SUBJECT)
    return Alert(
        dedup_key=value["dedup_key"],
        status=FIRING if value["status"] == FIRING else RESOLVED,
        rule=value["rule"],
        severity=value["severity"],
        dimension=value["dimension"],
        scope=value["scope"],
        observed=value["observed"],
        threshold=value["threshold"],
        unit=value["unit"],
        window=value["window"],
        summary=value["summary"],
        runbook_url=value["runbook_url"],
        at_ms=wire.epoch_ms(value["at_ms"]),
        started_at_ms=wire.epoch_ms(value["started_at_ms"]),
        agent=value["agent"],
        sample_event_ids=tuple(value["sample_event_ids"]),
        details=dict(value["details"]),
    )
