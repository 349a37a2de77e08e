"""The local schema catalogue: stable ids for every Avro schema Keel reads or writes.

``schemas/catalogue.json`` maps ids to ``.avsc`` files, the way a Schema Registry maps ids to
schemas, so values can use the Confluent wire format before a registry exists. Ids are never reused:
a changed schema gets a new file and a new id. Each entry records the fingerprint of its schema's
parsing canonical form; loading fails when a file no longer matches its recorded fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import orjson
from fastavro.schema import to_parsing_canonical_form

from streams.core.errors import SchemaCatalogueError

OUTPUT_PLACEHOLDER = "AGENT_OUTPUT"


@dataclass(frozen=True, slots=True)
class CatalogueSchema:
    id: int
    subject: str
    file: str
    output: str | None  # for composed result schemas: the agent output file placed in `output`
    raw: dict[str, Any]  # the schema as JSON
    parsed: Any  # fastavro's parsed form, ready for the writer and reader


class Catalogue:
    def __init__(self, schemas_dir: Path, entries: list[CatalogueSchema]) -> None:
        self.schemas_dir = schemas_dir
        self._by_id = {entry.id: entry for entry in entries}
        self._by_subject = {entry.subject: entry for entry in entries}

    def by_id(self, schema_id: int) -> CatalogueSchema | None:
        return self._by_id.get(schema_id)

    def by_subject(self, subject: str) -> CatalogueSchema:
        try:
            return self._by_subject[subject]
        except KeyError:
            raise SchemaCatalogueError(f"no schema with subject {subject!r} in the catalogue") from None

    def result_for_output(self, output_file: str) -> CatalogueSchema | None:
        return next((e for e in self._by_id.values() if e.output == output_file), None)

    def output_by_file(self, output_file: str) -> CatalogueSchema | None:
        return next((e for e in self._by_id.values() if e.file == output_file and e.output is None), None)

    def entries(self) -> list[CatalogueSchema]:
        return sorted(self._by_id.values(), key=lambda e: e.id)


def fingerprint(raw: dict[str, Any]) -> str:
    canonical = to_parsing_canonical_form(fastavro.parse_schema(copy.deepcopy(raw), _write_hint=False))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def compose_schema(schemas_dir: Path, file: str, output: str | None) -> dict[str, Any]:
    raw = _read_json(schemas_dir / file)
    if output is None:
        return raw
    output_raw = _read_json(schemas_dir / output)
    fields = [dict(f, type=output_raw) if f["type"] == OUTPUT_PLACEHOLDER else f for f in raw["fields"]]
    composed = dict(raw, fields=fields, namespace=f"{output_raw.get('namespace', 'dev.keel')}.result")
    return composed


def load_catalogue(schemas_dir: Path) -> Catalogue:
    path = schemas_dir / "catalogue.json"
    doc = _read_json(path)
    entries: list[CatalogueSchema] = []
    seen_ids: set[int] = set()
    for item in doc.get("schemas", []):
        schema_id, subject, file = item["id"], item["subject"], item["file"]
        if schema_id in seen_ids:
            raise SchemaCatalogueError(f"{path}: schema id {schema_id} is used twice")
        seen_ids.add(schema_id)
        output = item.get("output")
        raw = compose_schema(schemas_dir, file, output)
        actual = fingerprint(raw)
        if item.get("fingerprint") != actual:
            raise SchemaCatalogueError(
                f"{path}: schema id {schema_id} ({subject}) no longer matches {file}"
                f"{' + ' + output if output else ''}: recorded {item.get('fingerprint')}, now {actual}. "
                "Published schemas are immutable: add the changed schema as a new file with a new id."
            )
        parsed = fastavro.parse_schema(copy.deepcopy(raw))
        entries.append(CatalogueSchema(schema_id, subject, file, output, raw, parsed))
    return Catalogue(schemas_dir, entries)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise SchemaCatalogueError(f"{path}: cannot read schema: {exc}") from exc
    if not isinstance(doc, dict):
        raise SchemaCatalogueError(f"{path}: expected a JSON object")
    return doc


def main() -> None:
    """Print the fingerprint of every catalogue entry as it is now (for adding new entries)."""
    schemas_dir = Path(__file__).resolve().parents[2] / "schemas"
    doc = _read_json(schemas_dir / "catalogue.json")
    for item in doc["schemas"]:
        raw = compose_schema(schemas_dir, item["file"], item.get("output"))
        print(item["id"], item["subject"], fingerprint(raw))


if __name__ == "__main__":
    main()
