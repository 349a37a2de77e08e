"""Backward compatibility of Avro schemas, as the write-mode stand-in registry checks it.

``backward_problems(new, old)``: can a reader with ``new`` read data written with ``old``? It follows
the Avro specification's schema resolution (the rules Confluent's BACKWARD level applies to the latest
version): records match by unqualified name; a reader field missing from the writer needs a default;
writer fields the reader lacks are skipped; primitives promote int->long->float->double and
string<->bytes; every writer union branch must resolve to a reader branch; enum symbols the writer
has need a reader symbol or a reader default; arrays, maps and fixed sizes recurse. Not covered: field
and type aliases, and Confluent's other levels (FORWARD, FULL, the *_TRANSITIVE ones).
"""

from __future__ import annotations

import copy
from typing import Any

import fastavro

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = ("record", "error", "enum", "fixed")


def backward_problems(new: dict[str, Any] | list[Any] | str, old: dict[str, Any] | list[Any] | str) -> list[str]:
    """Why data written with ``old`` cannot be read with ``new`` (empty: it can)."""
    return _Check(_parsed(new), _parsed(old)).run()


def _parsed(schema: Any) -> Any:
    return fastavro.parse_schema(copy.deepcopy(schema), _write_hint=False, _force=True)


def _names(schema: Any, into: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, list):
        for branch in schema:
            _names(branch, into)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in _NAMED:
            into[schema["name"]] = schema
        for field in schema.get("fields", ()):
            _names(field["type"], into)
        for key in ("items", "values"):
            if key in schema:
                _names(schema[key], into)
        if isinstance(kind, dict | list):
            _names(kind, into)
    return into


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Check:
    def __init__(self, reader: Any, writer: Any) -> None:
        self._reader, self._writer = reader, writer
        self._reader_names, self._writer_names = _names(reader, {}), _names(writer, {})
        self._visiting: set[tuple[str, str]] = set()

    def run(self) -> list[str]:
        return self._check(self._reader, self._writer, "")

    def _resolve(self, schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema in names:
            return names[schema]
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return self._resolve(schema["type"], names)
        return schema

    def _check(self, reader: Any, writer: Any, path: str) -> list[str]:
        reader, writer = self._resolve(reader, self._reader_names), self._resolve(writer, self._writer_names)
        where = path or "the schema"
        if isinstance(writer, list):
            return [p for branch in writer for p in self._branch(reader, branch, path)]
        if isinstance(reader, list):
            return self._branch(reader, writer, path)
        r_kind, w_kind = _kind(reader), _kind(writer)
        if r_kind != w_kind:
            if r_kind in _PROMOTIONS.get(w_kind, ()):
                return []
            return [f"{where}: the old type {w_kind} cannot be read as {r_kind}"]
        if r_kind in _NAMED and _short(reader["name"]) != _short(writer["name"]):
            return [f"{where}: the old {w_kind} {writer['name']} cannot be read as {reader['name']}"]
        if r_kind in ("record", "error"):
            return self._record(reader, writer, path)
        if r_kind == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [f"{where}: enum {reader['name']} lost the symbols {', '.join(missing)} and has no default"]
        if r_kind == "fixed" and reader["size"] != writer["size"]:
            return [f"{where}: fixed {reader['name']} changed size from {writer['size']} to {reader['size']}"]
        if r_kind == "array":
            return self._check(reader["items"], writer["items"], f"{path}[]")
        if r_kind == "map":
            return self._check(reader["values"], writer["values"], f"{path}{{}}")
        return []

    def _branch(self, reader: Any, writer_branch: Any, path: str) -> list[str]:
        branches = reader if isinstance(reader, list) else [reader]
        if any(not self._check(branch, writer_branch, path) for branch in branches):
            return []
        return [f"{path or 'the schema'}: the old union branch {_kind(writer_branch)} matches no new branch"]

    def _record(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
        key = (reader["name"], writer["name"])
        if key in self._visiting:  # a recursive type: already being checked further up
            return []
        self._visiting.add(key)
        old_fields = {f["name"]: f for f in writer["fields"]}
        problems: list[str] = []
        for field in reader["fields"]:
            here = f"{path}.{field['name']}" if path else field["name"]
            if field["name"] in old_fields:
                problems += self._check(field["type"], old_fields[field["name"]]["type"], here)
            elif "default" not in field:
                problems.append(f"{here}: a new field without a default (the old schema has no {field['name']})")
        self._visiting.discard(key)
        return problems


def _kind(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    kind = schema.get("type")
    return kind if isinstance(kind, str) else _kind(kind)
