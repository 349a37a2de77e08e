"""Alerts for the tests of sinks and their delivery, in unit and integration tests alike."""

from __future__ import annotations

from streams.alerts.records import dedup_key
from streams.core.alert import Alert, Severity
from streams.core.ports.alert_sink import Delivered, DeliveryResult


def agent_alert(
    *,
    rule: str,
    scope: str,
    severity: Severity,
    observed: float,
    threshold: float,
    unit: str,
    window: str,
    summary: str,
    runbook_url: str,
    at_ms: int,
    agent: str | None = None,
    sample_event_ids: tuple[str, ...] = (),
    details: dict[str, str] | None = None,
) -> Alert:
    """A ``rule`` alert on the agent ``scope`` that fired at ``at_ms``, keyed by ``dedup_key`` as Keel keys it."""
    return Alert(
        dedup_key=dedup_key(rule, "agent", scope),
        status="firing",
        rule=rule,
        severity=severity,
        dimension="agent",
        scope=scope,
        observed=observed,
        threshold=threshold,
        unit=unit,
        window=window,
        summary=summary,
        runbook_url=runbook_url,
        at_ms=at_ms,
        started_at_ms=at_ms,
        agent=agent,
        sample_event_ids=sample_event_ids,
        details=details or {},
    )


class Sink:
    """A sink that takes every alert (and keeps it)."""

    name = "test"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def deliver(self, alert: Alert) -> DeliveryResult:
        self.alerts.append(alert)
        return Delivered()

    async def aclose(self) -> None:
        return None
