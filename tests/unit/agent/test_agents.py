from pathlib import Path

import pytest
import yaml

from streams.agent.definition import load_agent, load_agents
from streams.core.catalogue import Catalogue
from streams.core.errors import AgentDefinitionError
from streams.core.settings import REPO_ROOT

VALID = yaml.safe_load((REPO_ROOT / "deploy" / "agents" / "support_triage.yaml").read_text())


def _write(tmp_path: Path, document: object, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


def test_shipped_agents_load(catalogue: Catalogue) -> None:
    agents = load_agents(REPO_ROOT / "deploy" / "agents", catalogue)
    assert [a.name for a in agents] == ["invoice_extraction", "support_triage"]
    assert all(len(a.config_version) == 12 for a in agents)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model_chain": [{"provider": "local", "model": "m", "timeout_s": -1}]}, "model_chain.0.timeout_s"),
        ({"model_chain": []}, "model_chain: List should have at least 1 item"),
        ({"name": "Support Triage"}, "name: Value error, must be lower_snake_case"),
        ({"promt": {}}, "promt: Extra inputs are not permitted"),
        ({"prompt": {"system": "s"}}, "prompt.user: Field required"),
        ({"handoff": {"route": "sometimes"}}, "handoff.route"),
    ],
)
def test_invalid_definitions_name_file_and_field(
    tmp_path: Path, catalogue: Catalogue, change: dict[str, object], expected: str
) -> None:
    path = _write(tmp_path, {**VALID, **change})
    with pytest.raises(AgentDefinitionError) as info:
        load_agent(path, catalogue)
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_unknown_output_schema(tmp_path: Path, catalogue: Catalogue) -> None:
    path = _write(tmp_path, {**VALID, "output_schema": "agents/nope.avsc"})
    with pytest.raises(AgentDefinitionError, match="output_schema: agents/nope.avsc has no entry"):
        load_agent(path, catalogue)


def test_not_yaml_and_not_a_mapping(tmp_path: Path, catalogue: Catalogue) -> None:
    with pytest.raises(AgentDefinitionError, match="not valid YAML"):
        load_agent(_write(tmp_path, "name: [unclosed"), catalogue)
    with pytest.raises(AgentDefinitionError, match="must contain a YAML mapping"):
        load_agent(_write(tmp_path, "- a list"), catalogue)


def test_duplicate_names_are_refused(tmp_path: Path, catalogue: Catalogue) -> None:
    _write(tmp_path, VALID, "a.yaml")
    _write(tmp_path, VALID, "b.yaml")
    with pytest.raises(AgentDefinitionError, match="'support_triage' is already defined"):
        load_agents(tmp_path, catalogue)


def test_config_version_changes_with_the_definition(tmp_path: Path, catalogue: Catalogue) -> None:
    first = load_agent(_write(tmp_path, VALID), catalogue)
    changed = dict(VALID, prompt={**VALID["prompt"], "system": "Be brief."})
    second = load_agent(_write(tmp_path, changed), catalogue)
    assert first.config_version != second.config_version
    assert first.templates.version != second.templates.version


def test_an_agent_may_declare_rate_limits(tmp_path: Path, catalogue: Catalogue) -> None:
    limited = dict(VALID, rate_limit={"requests_per_minute": 30, "tokens_per_minute": 20000})
    agent = load_agent(_write(tmp_path, limited), catalogue)
    assert (agent.definition.rate_limit.requests_per_minute, agent.definition.rate_limit.tokens_per_minute) == (
        30,
        20000,
    )
    assert load_agent(_write(tmp_path, VALID), catalogue).definition.rate_limit.requests_per_minute is None
    with pytest.raises(AgentDefinitionError, match="rate_limit.requests_per_minute: Input should be greater than 0"):
        load_agent(_write(tmp_path, dict(VALID, rate_limit={"requests_per_minute": 0})), catalogue)
    with pytest.raises(AgentDefinitionError, match="rate_limit.rpm: Extra inputs are not permitted"):
        load_agent(_write(tmp_path, dict(VALID, rate_limit={"rpm": 5})), catalogue)
