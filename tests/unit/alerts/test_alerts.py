from streams.agent.definition import Agent
from streams.alerts.records import RUNBOOK_ANCHORS, alert_record, decode_alert, dedup_key, runbook_url
from streams.alerts.rules import MAX_LOOKBACK_S
from streams.apps.wiring import build_alert_sinks
from streams.contracts.topics import topic_plan
from streams.core import wire
from streams.core.alert import FIRING, Alert
from streams.core.catalogue import Catalogue
from streams.core.settings import REPO_ROOT, Settings


def budget_alert(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "dedup_key": dedup_key("budget", "agent", "support_triage"),
        "status": FIRING,
        "rule": "budget",
        "severity": "warning",
        "dimension": "agent",
        "scope": "support_triage",
        "observed": 41.5,
        "threshold": 40.0,
        "unit": "usd",
        "window": "1d",
        "summary": "support_triage: 83% of its daily budget spent",
        "runbook_url": "docs/runbooks.md#runbook-budget",
        "at_ms": 1_800_000_000_123,
        "started_at_ms": 1_800_000_000_123,
        "agent": "support_triage",
        "sample_event_ids": ("e-1", "e-2"),
        "details": {"level": "80"},
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


def test_an_alert_is_a_keyed_avro_record_on_keel_alerts_and_reads_back_the_same(catalogue: Catalogue) -> None:
    settings = Settings(namespace="ns")
    alert = budget_alert()
    record = alert_record(catalogue, settings, alert)
    assert record.topic == "ns.keel.alerts"
    assert record.key == b"budget:agent=support_triage"
    assert record.timestamp_ms == alert.at_ms
    assert wire.read_header(record.value) == 7
    assert dict(record.headers) == {
        "keel.alert.rule": b"budget",
        "keel.alert.status": b"firing",
        "keel.agent": b"support_triage",
    }
    assert decode_alert(catalogue, record.value) == alert


def test_an_alert_about_a_model_has_no_agent_header(catalogue: Catalogue) -> None:
    alert = budget_alert(agent=None, dimension="model", scope="sim/m", sample_event_ids=())
    record = alert_record(catalogue, Settings(), alert)
    assert "keel.agent" not in dict(record.headers)
    assert decode_alert(catalogue, record.value) == alert


def test_runbook_links_are_readme_anchors_under_a_base_unless_absolute() -> None:
    settings = Settings(alert_runbook_base_url="https://docs.example.com/keel")
    assert runbook_url(settings, "runbook-budget") == "https://docs.example.com/keel#runbook-budget"
    assert runbook_url(settings, "https://wiki.example.com/x") == "https://wiki.example.com/x"


def test_every_runbook_anchor_exists_in_the_runbooks_page_the_links_point_at() -> None:
    base = Settings().alert_runbook_base_url
    assert base == "docs/runbooks.md"
    runbooks = (REPO_ROOT / base).read_text()
    missing = [anchor for anchor in RUNBOOK_ANCHORS.values() if f'<a id="{anchor}"></a>' not in runbooks]
    assert not missing


def test_the_topic_plan_has_keel_alerts_and_the_observation_topic(agents: dict[str, Agent]) -> None:
    settings = Settings(namespace="ns")
    plan = {spec.name: spec for spec in topic_plan(list(agents.values()), settings)}
    assert plan["ns.keel.alerts"].configs == {"cleanup.policy": "delete", "retention.ms": str(7 * 86_400_000)}
    observations = plan["keel-ns-usage-alert-observations"]
    assert observations.partitions == settings.partitions
    assert int(observations.configs["retention.ms"]) > MAX_LOOKBACK_S * 1000


def test_sinks_are_built_from_settings_and_never_show_their_secrets() -> None:
    settings = Settings(
        alert_slack_webhook_url="https://hooks.slack.com/services/T0/B0/very-secret",
        alert_webhook_url="https://events.pagerduty.com/v2/enqueue",
        alert_webhook_routing_key="routing-secret",
    )
    sinks = build_alert_sinks(settings)
    assert [sink.name for sink in sinks] == ["slack", "webhook"]
    shown = repr(settings) + repr(sinks)
    assert "very-secret" not in shown and "routing-secret" not in shown
    assert build_alert_sinks(Settings()) == []
