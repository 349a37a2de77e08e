"""The schemas behind Keel's Schema Registry endpoint: subjects, versions and ids, and the registry's
errors (codes as Confluent's Schema Registry answers them).

Read-only, it holds the catalogue under the catalogue's ids (streams/contracts/registry_subjects.py).
``writable=True`` is the stand-in that client mode is tested against: registering a new schema under
a subject gives it a new id (from ``first_id``, so tests can tell registry ids from catalogue ids),
the same schema gets the same id under any subject, and registering checks backward compatibility
with the subject's latest version (streams/apps/registry/compat.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from fastavro.schema import SchemaParseException

from streams.apps.registry.compat import backward_problems
from streams.core.catalogue import CatalogueSchema

MAX_VERSION = 2**31 - 1


class RegistryError(Exception):
    """An error answer: HTTP status, the registry's ``error_code`` and ``message``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found.")


def schema_not_found(schema_id: int | None = None) -> RegistryError:
    return RegistryError(404, 40403, "Schema not found" if schema_id is None else f"Schema {schema_id} not found")


def invalid_schema(detail: str) -> RegistryError:
    return RegistryError(422, 42201, f"Invalid schema: {detail}")


def invalid_version(version: str) -> RegistryError:
    return RegistryError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. "
        f'Allowed values are between [1, {MAX_VERSION}] and the string "latest"',
    )


def read_only(subject: str) -> RegistryError:
    return RegistryError(422, 42205, f"Subject {subject} is in read-only mode")


def incompatible(subject: str, problems: list[str]) -> RegistryError:
    detail = "; ".join(problems)
    return RegistryError(409, 409, f"Schema being registered is incompatible with an earlier schema for subject "
                         f"\"{subject}\", details: [{detail}]")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Stored:
    id: int
    schema: str  # the schema as registered (a JSON string)
    raw: Any  # parsed JSON
    key: bytes  # the JSON re-serialised with sorted keys: "the same schema"


def _stored(schema_id: int, raw: Any, text: str | None = None) -> Stored:
    return Stored(schema_id, text or orjson.dumps(raw).decode(), raw, orjson.dumps(raw, option=orjson.OPT_SORT_KEYS))


class SchemaStore:
    def __init__(self, *, writable: bool = False, first_id: int = 1) -> None:
        self.writable = writable
        self._schemas: dict[int, Stored] = {}
        self._by_key: dict[bytes, int] = {}
        self._subjects: dict[str, list[int]] = {}  # version n is the (n-1)th id
        self._next_id = first_id

    @classmethod
    def serving(cls, subjects: dict[str, list[CatalogueSchema]]) -> SchemaStore:
        """The catalogue under its own ids: the read-only endpoint."""
        store = cls()
        for subject, entries in subjects.items():
            for entry in entries:
                stored = _stored(entry.id, entry.raw)
                store._schemas.setdefault(entry.id, stored)
                store._by_key.setdefault(stored.key, entry.id)
            store._subjects[subject] = [entry.id for entry in entries]
        return store

    def schema(self, schema_id: int) -> Stored:
        try:
            return self._schemas[schema_id]
        except KeyError:
            raise schema_not_found(schema_id) from None

    def subjects(self) -> list[str]:
        return sorted(self._subjects)

    def subjects_of(self, schema_id: int) -> list[tuple[str, int]]:
        """(subject, version) pairs that hold the id."""
        self.schema(schema_id)
        pairs = [(s, n) for s, ids in self._subjects.items() for n, i in enumerate(ids, 1) if i == schema_id]
        return sorted(pairs)

    def versions(self, subject: str) -> list[int]:
        return list(range(1, len(self._ids(subject)) + 1))

    def version(self, subject: str, version: str) -> tuple[int, Stored]:
        ids = self._ids(subject)
        number = self._version_number(version, len(ids))
        if number > len(ids):
            raise version_not_found(number)
        return number, self._schemas[ids[number - 1]]

    def lookup(self, subject: str, body: Any) -> tuple[int, Stored]:
        """The version of ``subject`` that holds this schema (``POST /subjects/{subject}``)."""
        ids = self._ids(subject)
        key = _stored(0, *parse_request(body)).key
        for number, schema_id in enumerate(ids, 1):
            if self._schemas[schema_id].key == key:
                return number, self._schemas[schema_id]
        raise schema_not_found()

    def register(self, subject: str, body: Any) -> int:
        """``POST /subjects/{subject}/versions``: the schema's id, registered as a new version if new."""
        if not self.writable:
            raise read_only(subject)
        raw, text = parse_request(body)
        candidate = _stored(0, raw, text)
        ids = self._subjects.get(subject, [])
        for schema_id in ids:
            if self._schemas[schema_id].key == candidate.key:
                return schema_id
        if ids and (problems := backward_problems(raw, self._schemas[ids[-1]].raw)):
            raise incompatible(subject, problems)
        known = self._by_key.get(candidate.key)
        if known is None:
            known = self._next_id
            self._next_id += 1
            self._schemas[known] = _stored(known, raw, text)
            self._by_key[candidate.key] = known
        self._subjects.setdefault(subject, []).append(known)
        return known

    def compatibility(self, subject: str, version: str, body: Any) -> list[str]:
        """Why the schema could not read data of ``subject``'s ``version`` (empty: it can). "latest" of a
        subject with no versions is compatible, as Confluent's registry answers."""
        raw, _ = parse_request(body)
        if version in ("latest", "-1") and subject not in self._subjects:
            return []
        _, old = self.version(subject, version)
        return backward_problems(raw, old.raw)

    def _ids(self, subject: str) -> list[int]:
        try:
            return self._subjects[subject]
        except KeyError:
            raise subject_not_found(subject) from None

    @staticmethod
    def _version_number(version: str, latest: int) -> int:
        if version in ("latest", "-1"):
            if latest == 0:
                raise version_not_found(version)
            return latest
        try:
            number = int(version)
        except ValueError:
            raise invalid_version(version) from None
        if not 1 <= number <= MAX_VERSION:
            raise invalid_version(version)
        return number


def parse_request(body: Any) -> tuple[Any, str]:
    """The schema of a register, lookup or compatibility request: ``{"schema": "...", "schemaType": "AVRO",
    "references": []}``. Only Avro without references."""
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise invalid_schema('the request needs a "schema" string')
    if body.get("schemaType", "AVRO") != "AVRO":
        raise invalid_schema(f"Keel's registry holds Avro schemas only, not {body['schemaType']}")
    if body.get("references"):
        raise invalid_schema("schema references are not supported")
    text: str = body["schema"]
    try:
        raw = orjson.loads(text)
        backward_problems(raw, raw)  # parses it: an invalid Avro schema is refused here
    except (orjson.JSONDecodeError, SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise invalid_schema(str(exc)) from exc
    return raw, text
