from collections.abc import Sequence

from sample_alerts import agent_alert
from sample_review_items import T0_MS, review_item

from streams.alerts.records import RUNBOOK_ANCHORS, alert_record, decode_alert, runbook_url
from streams.core import wire
from streams.core.alert import Alert
from streams.core.catalogue import Catalogue
from streams.core.review_item import ReviewItem
from streams.core.settings import Settings
from streams.kafka.alert_log import open_incidents
from streams.review.sla import SlaPolicy, review_sla_alerts, sla_dedup_key

MINUTE_MS = 60_000
POLICY = SlaPolicy(review_sla_s=3_600, escalate_after_s=4 * 3_600)
RUNBOOK = "docs/runbooks.md#runbook-review-sla"
WARNING_KEY = "review_sla:agent=invoice"
CRITICAL_KEY = "review_sla:agent=invoice|escalated"


def queue(*ages_min: int, now_ms: int = T0_MS, agent: str = "invoice") -> list[ReviewItem]:
    """Pending items that have waited ``ages_min`` minutes at ``now_ms``."""
    return [review_item(f"{agent}-{age}", agent=agent, created_at_ms=now_ms - age * MINUTE_MS) for age in ages_min]


def check(
    pending: list[ReviewItem], *, opened: Sequence[Alert] = (), policies: dict[str, SlaPolicy] | None = None
) -> list[Alert]:
    return review_sla_alerts(
        pending,
        now_ms=T0_MS,
        policies={"invoice": POLICY} if policies is None else policies,
        open_incidents=opened,
        runbook_url=RUNBOOK,
    )


def test_nothing_past_the_sla_says_nothing() -> None:
    assert check(queue(5, 59, 60)) == []  # exactly at the SLA is not past it
    assert check([]) == []


def test_the_oldest_item_past_the_sla_fires_a_warning_naming_the_oldest_items() -> None:
    [alert] = check(queue(10, 61, 90, 70, 62, 80, 65))
    assert alert.dedup_key == WARNING_KEY == sla_dedup_key("invoice")
    assert (alert.status, alert.rule, alert.severity, alert.dimension, alert.scope, alert.agent) == (
        "firing", "review_sla", "warning", "agent", "invoice", "invoice",
    )  # fmt: skip
    assert alert.sample_event_ids == ("invoice-90", "invoice-80", "invoice-70", "invoice-65", "invoice-62")
    assert (alert.observed, alert.threshold, alert.unit) == (90 * MINUTE_MS, 3_600_000, "ms")
    assert alert.started_at_ms == T0_MS - 30 * MINUTE_MS  # when the oldest passed the SLA
    assert alert.at_ms == T0_MS
    assert alert.runbook_url == RUNBOOK
    assert alert.details == {"level": "sla", "pending": "7", "past_limit": "6"}
    assert alert.summary == (
        "review queue of invoice: 6 items waiting past the 1h 00m SLA, the oldest for 1h 30m (7 pending)"
    )


def test_an_open_incident_is_not_fired_again() -> None:
    [alert] = check(queue(90))
    assert check(queue(95), opened=[alert]) == []


def test_past_the_escalation_age_a_critical_incident_of_its_own_fires() -> None:
    warning, critical = check(queue(300, 200))
    assert (warning.dedup_key, warning.severity) == (WARNING_KEY, "warning")
    assert (critical.dedup_key, critical.severity, critical.rule) == (CRITICAL_KEY, "critical", "review_sla")
    assert critical.sample_event_ids == ("invoice-300",)
    assert critical.threshold == 4 * 3_600_000
    assert critical.details["level"] == "escalated"
    [only_critical] = check(queue(300, 200), opened=[warning])
    assert only_critical.dedup_key == CRITICAL_KEY


def test_each_level_resolves_on_its_own() -> None:
    opened = check(queue(300))
    [critical_resolved] = check(queue(120), opened=opened)  # still past the SLA, no longer past escalation
    assert (critical_resolved.dedup_key, critical_resolved.status, critical_resolved.severity) == (
        CRITICAL_KEY, "resolved", "critical",
    )  # fmt: skip
    assert critical_resolved.started_at_ms == opened[1].started_at_ms
    assert critical_resolved.sample_event_ids == opened[1].sample_event_ids
    assert critical_resolved.summary.startswith("Resolved: no review item of invoice waits past the escalation")
    [warning_resolved] = check(queue(30), opened=[opened[0]])
    assert (warning_resolved.dedup_key, warning_resolved.status) == (WARNING_KEY, "resolved")
    assert warning_resolved.observed == 30 * MINUTE_MS
    both = check([], opened=opened)
    assert [(a.dedup_key, a.status) for a in both] == [(WARNING_KEY, "resolved"), (CRITICAL_KEY, "resolved")]


def test_agents_are_separate_and_other_rules_incidents_are_left_alone() -> None:
    policies = {"invoice": POLICY, "refunds": SlaPolicy(review_sla_s=600)}
    other = agent_alert(
        rule="error_rate", scope="refunds", severity="error", observed=0.5, threshold=0.25, unit="ratio", window="5m",
        summary="x", runbook_url="r", at_ms=T0_MS, agent="refunds",
    )  # fmt: skip
    alerts = check(queue(30) + queue(300, agent="refunds"), opened=[other], policies=policies)
    assert [(a.dedup_key, a.severity) for a in alerts] == [("review_sla:agent=refunds", "warning")]


def test_an_agent_whose_sla_is_gone_has_its_incidents_resolved() -> None:
    opened = check(queue(300))
    resolved = check(queue(300), opened=opened, policies={})
    assert {(a.dedup_key, a.status) for a in resolved} == {(WARNING_KEY, "resolved"), (CRITICAL_KEY, "resolved")}
    assert check(queue(300), policies={"invoice": SlaPolicy(review_sla_s=3_600)})[0].dedup_key == WARNING_KEY
    assert len(check(queue(300), policies={"invoice": SlaPolicy(review_sla_s=3_600)})) == 1  # no escalation declared


def test_over_a_day_of_checks_each_level_fires_once_and_resolves_once() -> None:
    """A queue filling and draining, checked every minute with the incidents the log would show open."""
    sent: list[Alert] = []
    created = [T0_MS + n * 7 * MINUTE_MS for n in range(60)]  # an item every 7 minutes
    # the first ten wait 5 hours (past the escalation), the rest 90 minutes (past the SLA only)
    decided_at = {at: at + (300 if n < 10 else 90) * MINUTE_MS for n, at in enumerate(created)}
    for minute in range(0, 24 * 60):
        now_ms = T0_MS + minute * MINUTE_MS
        pending = [review_item(f"i{at}", created_at_ms=at) for at in created if at <= now_ms < decided_at[at]]
        sent += review_sla_alerts(
            pending, now_ms=now_ms, policies={"invoice": POLICY}, open_incidents=open_incidents(sent),
            runbook_url=RUNBOOK,
        )  # fmt: skip
    assert [(a.dedup_key, a.status) for a in sent] == [
        (WARNING_KEY, "firing"), (CRITICAL_KEY, "firing"), (CRITICAL_KEY, "resolved"), (WARNING_KEY, "resolved"),
    ]  # fmt: skip
    assert [a.at_ms - T0_MS for a in sent] == [m * MINUTE_MS for m in (61, 241, 363, 503)]
    assert open_incidents(sent) == []


def test_the_alert_is_a_valid_keel_alerts_record_with_the_review_sla_runbook(catalogue: Catalogue) -> None:
    settings = Settings(namespace="ns")
    link = runbook_url(settings, RUNBOOK_ANCHORS["review_sla"])
    assert link.endswith("#runbook-review-sla")
    for alert in review_sla_alerts(
        queue(300), now_ms=T0_MS, policies={"invoice": POLICY}, open_incidents=(), runbook_url=link
    ):
        record = alert_record(catalogue, settings, alert)
        assert record.key == alert.dedup_key.encode()
        assert wire.read_header(record.value) == 7
        assert decode_alert(catalogue, record.value) == alert
