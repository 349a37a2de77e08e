"""Handoff policies are checked when an agent is loaded: on their own, and against the output schema."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.agent.definition import load_agent
from streams.agent.handoff_policy import HandoffPolicy
from streams.core.catalogue import Catalogue
from streams.core.errors import AgentDefinitionError
from streams.core.settings import REPO_ROOT

TRIAGE = yaml.safe_load((REPO_ROOT / "deploy" / "agents" / "support_triage.yaml").read_text())
INVOICE = yaml.safe_load((REPO_ROOT / "deploy" / "agents" / "invoice_extraction.yaml").read_text())


def _load(tmp_path: Path, catalogue: Catalogue, definition: dict[str, Any], handoff: dict[str, Any]) -> HandoffPolicy:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({**definition, "handoff": handoff}))
    return load_agent(path, catalogue).definition.handoff


def test_the_full_shape_loads(tmp_path: Path, catalogue: Catalogue) -> None:
    handoff = {
        "rules": [
            {"name": "large_total", "route": "review", "field": "total", "above": 500},
            {"name": "odd_document", "route": "flag", "field": "document_type", "in": ["credit_note"]},
            {"name": "fixed", "route": "flag", "when": "validation_warnings"},
            {"name": "fallback", "route": "review", "when": "fallback_model"},
        ],
        "qa_sample_rate": 0.02,
        "review_sla_s": 3600,
        "escalate_after_s": 14400,
        "on_reject": "rerun",
    }
    policy = _load(tmp_path, catalogue, INVOICE, handoff)
    assert [r.name for r in policy.rules] == ["large_total", "odd_document", "fixed", "fallback"]
    assert policy.rules[1].in_ == ("credit_note",) and policy.on_reject == "rerun"
    assert (policy.route, policy.review_sla_s, policy.qa_sample_rate) == ("autonomous", 3600, 0.02)


def test_an_agent_without_rules_stays_autonomous(tmp_path: Path, catalogue: Catalogue) -> None:
    policy = _load(tmp_path, catalogue, TRIAGE, {"route": "autonomous"})
    assert (policy.route, policy.rules, policy.qa_sample_rate, policy.on_reject) == ("autonomous", (), 0, "dead_letter")


@pytest.mark.parametrize(
    ("definition", "handoff", "expected"),
    [
        (
            INVOICE,
            {"rules": [{"name": "big", "route": "review", "field": "amount", "above": 5}]},
            "handoff.rules[0] (big): the output schema has no field 'amount' (it has: currency, ",
        ),
        (
            INVOICE,
            {"rules": [{"name": "big", "route": "review", "field": "vendor", "above": 5}]},
            "handoff.rules[0] (big): field 'vendor' is not a number (it is string)",
        ),
        (
            INVOICE,
            {"rules": [{"name": "due", "route": "flag", "field": "due_date", "below": 5}]},
            "field 'due_date' is not a number (it is date)",
        ),
        (
            TRIAGE,
            {"rules": [{"name": "odd", "route": "flag", "field": "category", "in": ["biling"]}]},
            "['biling'] are not symbols of field 'category'",
        ),
        (
            INVOICE,
            {"rules": [{"name": "unsure", "route": "review", "confidence_below": 0.7}]},
            "handoff.rules[0] (unsure): the output schema has no field 'confidence'",
        ),
        (
            TRIAGE,
            {"rules": [{"name": "unsure", "route": "review", "confidence_below": 0.7}], "confidence_field": "summary"},
            "field 'summary' is not a number",
        ),
        (
            INVOICE,
            {"rules": [{"name": "items", "route": "flag", "field": "line_items", "in": [1]}]},
            "field 'line_items' is array; `in` needs an enum, string, number or boolean field",
        ),
    ],
)
def test_a_rule_the_output_schema_cannot_satisfy_is_refused_at_load(
    tmp_path: Path, catalogue: Catalogue, definition: dict[str, Any], handoff: dict[str, Any], expected: str
) -> None:
    with pytest.raises(AgentDefinitionError) as info:
        _load(tmp_path, catalogue, definition, handoff)
    assert str(info.value).startswith(str(tmp_path / "agent.yaml"))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("handoff", "expected"),
    [
        ({"rules": [{"name": "x", "route": "review", "field": "category"}]}, "exactly one of above, below or in"),
        ({"rules": [{"name": "x", "route": "review", "field": "confidence", "above": 1, "below": 2}]}, "exactly one"),
        ({"rules": [{"name": "x", "route": "review", "above": 1}]}, "exactly one of field, confidence_below or when"),
        ({"rules": [{"name": "x", "route": "review", "when": "fallback_model", "confidence_below": 0.5}]}, "exactly"),
        ({"rules": [{"name": "x", "route": "review", "when": "sometimes"}]}, "handoff.rules.0.when"),
        ({"rules": [{"name": "x", "route": "autonomous", "when": "fallback_model"}]}, "handoff.rules.0.route"),
        ({"rules": [{"name": "qa_sample", "route": "review", "when": "fallback_model"}]}, "reserved 'qa_sample'"),
        ({"rules": [{"name": "x", "route": "flag", "when": "fallback_model"}] * 2}, "rule names must be unique: x"),
        ({"rules": [{"name": "x", "route": "flag", "confidence_below": 1.5}]}, "confidence_below"),
        ({"rules": [{"name": "x", "route": "flag", "field": "category", "in": []}]}, "handoff.rules.0.in"),
        ({"qa_sample_rate": 1.5}, "handoff.qa_sample_rate"),
        ({"review_sla_s": 3600, "escalate_after_s": 60}, "escalate_after_s must not be shorter than review_sla_s"),
        ({"on_reject": "ignore"}, "handoff.on_reject"),
        ({"rule": []}, "handoff.rule: Extra inputs are not permitted"),
    ],
)
def test_an_invalid_policy_is_refused_with_its_field(
    tmp_path: Path, catalogue: Catalogue, handoff: dict[str, Any], expected: str
) -> None:
    with pytest.raises(AgentDefinitionError) as info:
        _load(tmp_path, catalogue, TRIAGE, handoff)
    assert expected in str(info.value)
