from streams.alerts.observation import Observation, from_audit, from_usage, partition_of
from streams.cli.alerts import describe
from streams.core.alert import Alert
from streams.kafka.alert_log import open_incidents


def test_usage_and_audit_records_become_observations_that_survive_the_wire() -> None:
    usage = {"event_id": "e1", "agent": "a", "provider": "sim", "model": "m", "tenant": "", "outcome": "ok"}
    usage |= {"latency_ms": 12.5, "cost_usd": None}
    obs = from_usage(usage, partition=2, offset=9, at_ms=1000)
    assert (obs.model, obs.tenant, obs.unpriced, obs.scope("model")) == ("sim/m", "-", True, "sim/m")
    assert Observation.from_bytes(obs.to_bytes()) == obs
    audit = {
        "event_id": "e2",
        "agent": "a",
        "provider": None,
        "model": None,
        "tenant": "acme",
        "outcome": "dead_letter",
    }
    audit |= {"error": {"reason": "circuit_open"}, "total_ms": 40.0}
    seen = from_audit(audit, partition=1, offset=3, at_ms=2000)
    assert (seen.model, seen.reason, seen.latency_ms, seen.unpriced) == (None, "circuit_open", 40.0, False)
    assert seen.scope("model") is None and Observation.from_bytes(seen.to_bytes()) == seen


def test_a_scope_always_lands_in_the_same_partition() -> None:
    assert partition_of("agent=support_triage", 4) == partition_of("agent=support_triage", 4)
    assert {partition_of(f"agent=a{i}", 4) for i in range(40)} == {0, 1, 2, 3}


def alert(key: str, status: str, at: int) -> Alert:
    return Alert(key, status, "r", "info", "agent", "a", 1, 1, "count", "1m", f"{key} {status}", "u", at, at)  # type: ignore[arg-type]


def test_open_incidents_are_the_firing_alerts_not_resolved_since() -> None:
    history = [alert("x", "firing", 1), alert("y", "firing", 2), alert("x", "resolved", 3), alert("z", "firing", 4)]
    history += [alert("z", "resolved", 5), alert("z", "firing", 6)]
    assert [(a.dedup_key, a.at_ms) for a in open_incidents(history)] == [("y", 2), ("z", 6)]
    assert "firing" in describe(history[0]) and "1970-01-01 00:00:00" in describe(history[0])


def test_an_output_from_another_model_version_is_seen_by_its_warning() -> None:
    audit = {"event_id": "e3", "agent": "a", "provider": "sim", "model": "m", "tenant": "", "outcome": "result"}
    audit |= {"error": None, "total_ms": 5.0, "warnings": ["model_version_changed: sim/m reported 'b', pinned 'a'"]}
    assert from_audit(audit, partition=0, offset=1, at_ms=1).reason == "model_version_changed"
    audit["warnings"] = ["priority: accepted 'HIGH' as 'high'"]
    assert from_audit(audit, partition=0, offset=1, at_ms=1).reason is None
