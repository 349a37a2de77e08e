"""``keel.agent-configs``: agent versions and labels as Kafka values, and the state they add up to.

A version is keyed ``version/<agent>/<version_id>`` and never changes; an agent's labels are keyed
``labels/<agent>``, and the latest evaluation of a version (`keel eval`) ``eval/<agent>/<version_id>``,
so compaction keeps every version, the latest labels and each version's latest evaluation. Every labels
change is also written under a key of its own, ``change/<agent>/<at_ms>/<digest>``, so compaction keeps
them all: the audit trail of who moved which label from which version to which, and why. Versions
and labels are written with the first schema (``agent_config.avsc``), which every worker reads;
evaluations need the second (``agent_config_v2.avsc``), and both are read. The topic has one
partition: a labels record comes after the version it names, for every reader. Anyone who may write
the topic can write anything to it, so every value is checked as it is read: a record that is not a
well-formed version (its id the digest of its content) or labels record is a ``DecodeError``, and
labels that name a version the topic does not hold are refused when applied (``ConfigLog.apply``).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from streams.agent.definition import AgentDefinition, config_digest, definition_from_document
from streams.agent.evaluation import EvalFigures, Evaluation
from streams.agent.versions import AgentVersion, Labels, LabelsChanged, definition_json
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import AGENT_CONFIGS
from streams.core import wire
from streams.core.catalogue import Catalogue, CatalogueSchema
from streams.core.errors import AgentConfigRefused, AgentDefinitionError, DecodeError, UnexpectedValue
from streams.core.settings import Settings

SUBJECT = "keel.agent-configs-value"
MAX_VALUE_BYTES = 512 * 1024  # a definition and its schema; a larger value is not read
FIRST_SCHEMA = "agent_config.avsc"  # versions and labels: readable by workers that predate evaluations
Entry = AgentVersion | Labels | LabelsChanged | Evaluation


def version_key(agent: str, version_id: str) -> bytes:
    return f"version/{agent}/{version_id}".encode()


def labels_key(agent: str) -> bytes:
    return f"labels/{agent}".encode()


def change_prefix(agent: str) -> bytes:
    return f"change/{agent}/".encode()


def eval_key(agent: str, version_id: str) -> bytes:
    return f"eval/{agent}/{version_id}".encode()


def version_record(catalogue: Catalogue, settings: Settings, version: AgentVersion) -> OutRecord:
    value = {
        "kind": "VERSION",
        "agent": version.agent,
        "at_ms": version.at_ms,
        "author": version.author,
        "message": version.message,
        "version": {
            "version_id": version.version_id,
            "parent": version.parent,
            "definition_json": definition_json(version.definition),
            "output_schema_json": orjson.dumps(version.output_schema, option=orjson.OPT_SORT_KEYS).decode(),
            "source": version.source,
        },
        "labels": None,
    }
    return _record(_first(catalogue), settings, version_key(version.agent, version.version_id), value)


def labels_records(catalogue: Catalogue, settings: Settings, labels: Labels) -> list[OutRecord]:
    """The change as the audit trail keeps it, then the labels every worker follows."""
    labels_value = _labels_value(labels)
    schema = _first(catalogue)
    encoded = wire.encode(schema, labels_value)
    digest = hashlib.sha256(encoded).hexdigest()[:12]  # the same change written twice is one record
    change = change_prefix(labels.agent) + f"{labels.at_ms:013d}/{digest}".encode()
    topic = settings.topic(AGENT_CONFIGS)
    return [OutRecord(topic, change, encoded, ()), OutRecord(topic, labels_key(labels.agent), encoded, ())]


def _labels_value(labels: Labels) -> dict[str, Any]:
    return {
        "kind": "LABELS",
        "agent": labels.agent,
        "at_ms": labels.at_ms,
        "author": labels.author,
        "message": labels.message,
        "version": None,
        "labels": {
            "stable": labels.stable,
            "canary": labels.canary,
            "canary_percent": labels.canary_percent,
            "stable_history": list(labels.stable_history),
            "change": labels.change,
            "previous_stable": labels.previous_stable,
            "previous_canary": labels.previous_canary,
        },
    }


def eval_record(catalogue: Catalogue, settings: Settings, evaluation: Evaluation) -> OutRecord:
    value = {
        "kind": "EVAL",
        "agent": evaluation.agent,
        "at_ms": evaluation.at_ms,
        "author": evaluation.author,
        "message": evaluation.message,
        "version": None,
        "labels": None,
        "evaluation": {
            "version_id": evaluation.version_id,
            "baseline": evaluation.baseline,
            "inputs": evaluation.inputs,
            "run_id": evaluation.run_id,
            "passed": evaluation.passed,
            "reasons": list(evaluation.reasons),
            "candidate": asdict(evaluation.candidate),
            "baseline_figures": asdict(evaluation.baseline_figures),
        },
    }
    schema = catalogue.by_subject(SUBJECT)  # the latest: the one with evaluations
    return _record(schema, settings, eval_key(evaluation.agent, evaluation.version_id), value)


def _first(catalogue: Catalogue) -> CatalogueSchema:
    entry = catalogue.output_by_file(FIRST_SCHEMA)  # any plain entry by its file
    if entry is None or entry.subject != SUBJECT:
        return catalogue.by_subject(SUBJECT)  # a catalogue without it: its own schema for the subject
    return entry


def _record(schema: CatalogueSchema, settings: Settings, key: bytes, value: dict[str, Any]) -> OutRecord:
    return OutRecord(settings.topic(AGENT_CONFIGS), key, wire.encode(schema, value), ())


def decode_config(catalogue: Catalogue, key: bytes | None, data: bytes | None) -> Entry:
    """A record of the topic, checked: its key names what its value holds, a version's id is the digest
    of its definition and schema. Raises ``DecodeError``."""
    if data is None:
        raise DecodeError("a record with no value")
    if len(data) > MAX_VALUE_BYTES:
        raise UnexpectedValue(
            f"a value of {len(data):,} bytes; an agent configuration takes at most {MAX_VALUE_BYTES:,}"
        )
    v = wire.decode(catalogue, data, subject=SUBJECT)
    agent, stamp = v["agent"], {"author": v["author"], "at_ms": v["at_ms"], "message": v["message"]}
    if v["kind"] == "LABELS" and v["labels"] is not None and key is not None:
        labels = v["labels"]
        decoded = Labels(
            agent, labels["stable"], labels["canary"], float(labels["canary_percent"]),
            tuple(labels["stable_history"]), labels["change"], labels["previous_stable"], labels["previous_canary"],
            **stamp,
        )  # fmt: skip
        if key == labels_key(agent):
            return decoded
        if key.startswith(change_prefix(agent)):
            return LabelsChanged(decoded)
    evaluation = v.get("evaluation")
    if v["kind"] == "EVAL" and evaluation is not None and key == eval_key(agent, evaluation["version_id"]):
        return _evaluation(agent, evaluation, stamp)
    version = v["version"]
    if v["kind"] != "VERSION" or version is None or key != version_key(agent, version["version_id"]):
        raise UnexpectedValue(f"a {v['kind']} record of agent {agent!r} under key {key!r}")
    definition, schema = _version_content(agent, version)
    if config_digest(definition, schema) != version["version_id"]:
        raise UnexpectedValue(f"version {version['version_id']!r} of {agent!r} is not the digest of its content")
    return AgentVersion(agent, version["version_id"], definition, schema, version["parent"], version["source"], **stamp)


def _evaluation(agent: str, e: dict[str, Any], stamp: dict[str, Any]) -> Evaluation:
    return Evaluation(
        agent, e["version_id"], e["baseline"], e["inputs"], e["run_id"], e["passed"], tuple(e["reasons"]),
        EvalFigures(**e["candidate"]), EvalFigures(**e["baseline_figures"]), **stamp,
    )  # fmt: skip


def _version_content(agent: str, version: dict[str, Any]) -> tuple[AgentDefinition, dict[str, Any]]:
    try:
        document, schema = orjson.loads(version["definition_json"]), orjson.loads(version["output_schema_json"])
        definition = definition_from_document(document, f"version {version['version_id']} of {agent}")
    except (orjson.JSONDecodeError, AgentDefinitionError) as exc:
        raise UnexpectedValue(
            f"version {version['version_id']!r} of {agent!r} is not a valid definition: {exc}"
        ) from exc
    if definition.name != agent or not isinstance(schema, dict):
        raise UnexpectedValue(f"version {version['version_id']!r} is not a version of {agent!r}")
    return definition, schema


@dataclass
class ConfigLog:
    """What the topic holds so far: every version, and each agent's labels."""

    versions: dict[str, dict[str, AgentVersion]] = field(default_factory=dict)  # agent -> id -> version
    labels: dict[str, Labels] = field(default_factory=dict)
    changes: dict[str, list[Labels]] = field(default_factory=dict)  # agent -> every labels change, in order
    evaluations: dict[tuple[str, str], Evaluation] = field(default_factory=dict)  # (agent, id) -> the latest

    def apply(self, entry: Entry) -> None:
        """Raises ``AgentConfigRefused`` for labels that name a version the topic does not hold."""
        if isinstance(entry, AgentVersion):
            self.versions.setdefault(entry.agent, {}).setdefault(entry.version_id, entry)
            return
        if isinstance(entry, Evaluation):
            self.evaluations[entry.agent, entry.version_id] = entry  # of a version read or not: kept either way
            return
        if isinstance(entry, LabelsChanged):  # history: what it names was checked when it was live
            self.changes.setdefault(entry.labels.agent, []).append(entry.labels)
            return
        known = self.versions.get(entry.agent, {})
        missing = [v for v in (entry.stable, entry.canary) if v is not None and v not in known]
        if missing:
            raise AgentConfigRefused(f"labels of {entry.agent} name versions the topic does not hold: {missing}")
        self.labels[entry.agent] = entry

    def version(self, agent: str, version_id: str) -> AgentVersion:
        """By id or a prefix of it that names one version."""
        known = self.versions.get(agent, {})
        matches = [v for key, v in known.items() if key.startswith(version_id)] if version_id else []
        if len(matches) != 1:
            found = "no version" if not matches else f"{len(matches)} versions"
            raise AgentConfigRefused(f"{found} of {agent} match {version_id!r}; see keel agent versions {agent}")
        return matches[0]

    def history(self, agent: str) -> list[AgentVersion]:
        """The agent's versions in the order they were published (versions never change, so compaction
        keeps that order)."""
        return list(self.versions.get(agent, {}).values())
