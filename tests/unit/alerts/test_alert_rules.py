from pathlib import Path

import pytest

from streams.alerts.records import RUNBOOK_ANCHORS
from streams.alerts.rules import RESERVED, AlertRules, AlertRulesError, CostSpike, format_duration, load_rules
from streams.core.settings import Settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_the_default_rules_load_and_cover_every_kind() -> None:
    rules = load_rules(Settings().alert_rules_file)
    kinds = {rule.kind for rule in rules.rules}
    assert kinds == set(RUNBOOK_ANCHORS) - RESERVED
    [spike] = [rule for rule in rules.rules if isinstance(rule, CostSpike)]
    assert (spike.window, spike.baseline, spike.threshold) == (900, 6 * 3600, 3)
    assert rules.lookback_s == 15 * 60 + 6 * 3600 + 10
    assert {rule.by for rule in rules.rules if rule.kind == "unpriced_model"} == {"model"}


def test_durations_and_defaults() -> None:
    rules = AlertRules.model_validate(
        {"resolution_s": "5s", "rules": [{"name": "dl", "kind": "dead_letters", "window": "2m", "threshold": 3}]}
    )
    [rule] = rules.rules
    assert rule.window == 120 and rule.by == "agent" and rule.severity == "warning"
    assert rules.clear_after_ms(rule) == 300_000
    assert rule.runbook_anchor == "runbook-dead-letters"
    assert [format_duration(s) for s in (30, 120, 3600, 5400, 86400)] == ["30s", "2m", "1h", "90m", "1d"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules: [{name: x1, kind: error_rate, window: 5m, threshold: 1.5}]", "rules.0.error_rate.threshold"),
        ("rules: [{name: x1, kind: nonsense}]", "does not match any of the expected tags"),
        ("rules: [{name: x1, kind: dead_letters, window: 5 minutes, threshold: 1}]", "not a duration"),
        ("rules: [{name: x1, kind: dead_letters, window: 15s, threshold: 1}]", "multiple of resolution_s"),
        ("rules: [{name: budget, kind: dead_letters, window: 1m, threshold: 1}]", "reserved"),
        ("rules: [{name: review_sla, kind: dead_letters, window: 1m, threshold: 1}]", "reserved"),
        ("rules: [{name: a1, kind: circuit_open, window: 1m}, {name: a1, kind: circuit_open, window: 2m}]", "twice"),
        ("rules: [{name: c1, kind: cost_spike, window: 1h, baseline: 1d, threshold: 3}]", "looks back"),
        ("rules: [{name: x1, kind: latency, window: 1m, threshold: 100, colour: red}]", "Extra inputs"),
        ("rules: [{name: x1, kind: latency, window: 1m, threshold: 100, by: region}]", "rules.0.latency.by"),
        ("rules: [unclosed", "cannot read"),
    ],
)
def test_an_invalid_rules_file_names_the_file_and_the_field(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(AlertRulesError) as raised:
        load_rules(path)
    assert str(path) in str(raised.value) and problem in str(raised.value)
