"""Connector files: what a valid one holds, and every mistake named with its file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from streams.core.connectors import ConnectorDefinition, load_connectors
from streams.core.errors import ConnectorConfigError

REPO = Path(__file__).resolve().parents[3]
HTTP = {
    "name": "crm",
    "kind": "http",
    "base_url": "http://127.0.0.1:8095",
    "tools": {
        "lookup_customer": {
            "description": "A customer",
            "path": "/customers/{customer_id}",
            "arguments": {"type": "object", "properties": {"customer_id": {"type": "string"}}},
        },
        "create_ticket": {"description": "Open", "method": "POST", "path": "/tickets", "arguments": {"type": "object"}},
        "close_ticket": {
            "description": "Close",
            "method": "GET",
            "effect": "write",
            "path": "/t",
            "arguments": {"type": "object"},
        },
    },
}


def _write(folder: Path, name: str, document: object) -> None:
    (folder / name).write_text(yaml.safe_dump(document), encoding="utf-8")


def test_the_shipped_connectors_load() -> None:
    connectors = load_connectors(REPO / "deploy" / "connectors")
    assert "crm" in connectors and connectors["crm"].writes("create_ticket")


def test_writes_are_every_method_but_get_unless_declared() -> None:
    crm = ConnectorDefinition.model_validate(HTTP)
    assert not crm.writes("lookup_customer") and crm.writes("create_ticket") and crm.writes("close_ticket")
    assert not crm.writes("no_such_tool")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "CRM!"}, "name"),
        ({"kind": "ftp"}, "kind"),
        ({"auth": {"type": "bearer", "token": {"env": "A", "file": "/b"}}}, "auth"),
        ({"auth": {"type": "bearer", "token": "s3cret-inline"}}, "auth"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"surprise": 1}, "surprise"),
        ({"tools": {"x": {"description": "d", "path": "/a/{missing}", "arguments": {"type": "object"}}}}, "missing"),
        ({"tools": {"x": {"description": "d", "path": "/a", "arguments": {"type": "array"}}}}, "type object"),
        ({"transport": "stdio"}, "http connector"),
    ],
)
def test_a_bad_connector_file_is_refused_with_its_file_and_field(
    tmp_path: Path, change: dict[str, object], field: str
) -> None:
    _write(tmp_path, "crm.yaml", HTTP | change)
    with pytest.raises(ConnectorConfigError) as refused:
        load_connectors(tmp_path)
    assert str(tmp_path / "crm.yaml") in str(refused.value) and field in str(refused.value)
    assert "s3cret-inline" not in str(refused.value)  # a secret written inline is not repeated


def test_two_files_may_not_declare_one_connector(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", HTTP)
    _write(tmp_path, "b.yaml", HTTP)
    with pytest.raises(ConnectorConfigError, match="declared twice"):
        load_connectors(tmp_path)


def test_no_folder_is_no_connectors(tmp_path: Path) -> None:
    assert load_connectors(tmp_path / "absent") == {}
