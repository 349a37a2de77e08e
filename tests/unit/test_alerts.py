from streams import wire
from streams.alerts import (
    FIRING,
    RUNBOOK_ANCHORS,
    Alert,
    alert_record,
    decode_alert,
    dedup_key,
    runbook_url,
)
from streams.catalogue import Catalogue
from streams.settings import REPO_ROOT, Settings


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
        "runbook_url": "README.md#runbook-budget",
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


def test_every_runbook_anchor_exists_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [anchor for anchor in RUNBOOK_ANCHORS.values() if f'<a id="{anchor}"></a>' not in readme]
    assert not missing
