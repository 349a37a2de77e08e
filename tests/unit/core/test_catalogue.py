import json
import shutil
from pathlib import Path

import pytest

from streams.core import wire
from streams.core.catalogue import Catalogue, load_catalogue
from streams.core.errors import SchemaCatalogueError
from streams.core.settings import REPO_ROOT


def test_every_schema_has_a_unique_id_and_parses(catalogue: Catalogue) -> None:
    entries = catalogue.entries()
    assert len({e.id for e in entries}) == len(entries)
    subjects = {e.subject for e in entries}
    assert {"keel.request-value", "keel.dlq-value", "keel.audit-value", "keel.usage-value"} <= subjects


def test_result_schema_embeds_the_agent_output(catalogue: Catalogue) -> None:
    result = catalogue.result_for_output("agents/support_triage.avsc")
    assert result is not None
    output_field = next(f for f in result.raw["fields"] if f["name"] == "output")
    assert output_field["type"]["name"] == "SupportTriage"


def test_a_changed_schema_without_a_new_id_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", copy)
    usage = json.loads((copy / "usage.avsc").read_text())
    usage["fields"].append({"name": "cost_usd", "type": "double"})
    (copy / "usage.avsc").write_text(json.dumps(usage))
    with pytest.raises(SchemaCatalogueError, match=r"schema id 4 \(keel.usage-value\) no longer matches usage.avsc"):
        load_catalogue(copy)


def test_round_trip_in_confluent_wire_format(catalogue: Catalogue) -> None:
    schema = catalogue.by_subject("keel.usage-value")
    value = {
        "event_id": "e1",
        "agent": "a",
        "agent_version": "1",
        "tenant": "t",
        "provider": "sim",
        "model": "m",
        "model_version": None,
        "attempt": 1,
        "purpose": "initial",
        "tokens_in": 3,
        "tokens_out": 4,
        "latency_ms": 1.5,
        "outcome": "ok",
        "at": 1_700_000_000_000,
    }
    data = wire.encode(schema, value)
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == schema.id
    decoded = wire.decode(catalogue, data, subject="keel.usage-value")
    assert decoded["tokens_out"] == 4 and decoded["event_id"] == "e1"
