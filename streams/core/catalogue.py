"""The local schema catalogue: stable ids for every Avro schema Keel reads or writes.

``schemas/catalogue.json`` maps ids to ``.avsc`` files, the way a Schema Registry maps ids to
schemas, so values can use the Confluent wire format before a registry exists. Ids are never reused:
a changed schema gets a new file and a new id. Each entry records the fingerprint of its schema's
parsing canonical form; loading fails when a file no longer matches its recorded fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import fastavro
import orjson
from fastavro.schema import to_parsing_canonical_form

from streams.core.errors import SchemaCatalogueError

OUTPUT_PLACEHOLDER = "AGENT_OUTPUT"
_MAX_MISSING = 10_000


@dataclass(frozen=True, slots=True)
class CatalogueSchema:
    id: int
    subject: str
    file: str
    output: str | None  # for composed result schemas: the agent output file placed in `output`
    raw: dict[str, Any]  # the schema as JSON
    parsed: Any  # fastavro's parsed form, ready for the writer and reader
    fingerprint: str = ""  # sha256 of the parsing canonical form (see ``fingerprint``)


# Looks up an id the catalogue does not know (a Schema Registry's, streams/apps/registry/client_mode.py);
# None: no such schema. Called once per id: what it returns is kept.
Resolver = Callable[[int], "CatalogueSchema | None"]


class Catalogue:
    """The schemas by id and by subject. Embedded: ids are the catalogue's own. With a Schema Registry
    (``with_registry_ids``): the entries Keel writes carry the registry's ids, and any other id is read
    through ``resolver``, matched to a catalogue schema by fingerprint when it is one."""

    def __init__(
        self,
        schemas_dir: Path,
        entries: list[CatalogueSchema],
        *,
        readable: Mapping[int, CatalogueSchema] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.schemas_dir = schemas_dir
        self._entries = entries
        self._by_id = dict(readable) if readable is not None else {entry.id: entry for entry in entries}
        self._by_subject = {entry.subject: entry for entry in entries}
        self._resolver = resolver
        self._missing: set[int] = set()  # ids the resolver found nothing under (bounded: hostile input)

    @property
    def from_registry(self) -> bool:
        return self._resolver is not None

    def by_id(self, schema_id: int) -> CatalogueSchema | None:
        entry = self._by_id.get(schema_id)
        if entry is None and self._resolver is not None and schema_id not in self._missing:
            entry = self._resolver(schema_id)
            if entry is not None:
                self._by_id[schema_id] = entry
            else:
                if len(self._missing) >= _MAX_MISSING:
                    self._missing.clear()
                self._missing.add(schema_id)
        return entry

    def knows(self, schema_id: int) -> bool:
        """Whether ``by_id`` answers without asking the resolver."""
        return self._resolver is None or schema_id in self._by_id or schema_id in self._missing

    def by_fingerprint(self, value: str) -> CatalogueSchema | None:
        """The catalogue's schema with this canonical form (the latest entry when two share it)."""
        return next((e for e in reversed(self._entries) if e.fingerprint == value), None)

    def with_registry_ids(self, ids: Mapping[int, int], resolver: Resolver) -> Catalogue:
        """This catalogue with the registry's ids: ``ids`` maps catalogue ids to registry ids for the
        schemas Keel writes. Catalogue ids mean nothing any more: every id read is a registry id."""
        entries = [replace(e, id=ids[e.id]) if e.id in ids else e for e in self._entries]
        readable = {ids[old.id]: new for old, new in zip(self._entries, entries, strict=True) if old.id in ids}
        return Catalogue(self.schemas_dir, entries, readable=readable, resolver=resolver)

    def adopt(self, schema_id: int, raw: dict[str, Any]) -> CatalogueSchema:
        """The entry for a schema read from a registry under ``schema_id``: the catalogue's own parsed
        schema when the canonical forms match, else the schema parsed (its subject ``registry:<id>``,
        which no Keel decoder expects)."""
        known = self.by_fingerprint(fingerprint(raw))
        if known is not None:
            return replace(known, id=schema_id)
        parsed = fastavro.parse_schema(copy.deepcopy(raw))
        return CatalogueSchema(schema_id, f"registry:{schema_id}", "", None, raw, parsed, fingerprint(raw))

    def by_subject(self, subject: str) -> CatalogueSchema:
        try:
            return self._by_subject[subject]
        except KeyError:
            raise SchemaCatalogueError(f"no schema with subject {subject!r} in the catalogue") from None

    def result_for_output(self, output_file: str) -> CatalogueSchema | None:
        return next((e for e in self._entries if e.output == output_file), None)

    def output_by_file(self, output_file: str) -> CatalogueSchema | None:
        return next((e for e in self._entries if e.file == output_file and e.output is None), None)

    def entries(self) -> list[CatalogueSchema]:
        return sorted(self._entries, key=lambda e: e.id)


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
        entries.append(CatalogueSchema(schema_id, subject, file, output, raw, parsed, actual))
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
