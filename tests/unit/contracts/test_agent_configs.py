"""keel.agent-configs values: what is written reads back; what anyone else writes there is refused."""

from __future__ import annotations

import dataclasses

import pytest

from streams.agent.definition import Agent
from streams.agent.evaluation import EvalFigures, Evaluation
from streams.agent.versions import Change, Labels, LabelsChanged, promoted, rolled_back, version_of
from streams.contracts.agent_configs import (
    ConfigLog,
    decode_config,
    eval_key,
    eval_record,
    labels_key,
    labels_records,
    version_key,
    version_record,
)
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.errors import AgentConfigRefused, DecodeError
from streams.core.settings import Settings

SETTINGS = Settings(namespace="t")
CHANGE = Change("ana", 1_000, "first")


def test_versions_and_labels_read_back(catalogue: Catalogue, agents: dict[str, Agent]) -> None:
    version = version_of(agents["support_triage"], parent=None, change=CHANGE)
    record = version_record(catalogue, SETTINGS, version)
    assert record.topic == "t.keel.agent-configs" and record.key == version_key("support_triage", version.version_id)
    assert decode_config(catalogue, record.key, record.value) == version
    labels = promoted(None, "support_triage", version.version_id, CHANGE, canary_percent=None)
    change, record = labels_records(catalogue, SETTINGS, labels)
    assert record.key == labels_key("support_triage")
    assert decode_config(catalogue, record.key, record.value) == labels
    assert change.key.startswith(b"change/support_triage/0000000001000/")
    assert decode_config(catalogue, change.key, change.value) == LabelsChanged(labels)


def test_every_labels_change_stays_in_the_log(catalogue: Catalogue, agents: dict[str, Agent]) -> None:
    """Compaction keeps the latest labels only; each change has a key of its own, so the trail stays."""
    first = version_of(agents["support_triage"], parent=None, change=CHANGE)
    log = ConfigLog()
    log.apply(first)
    made = [promoted(None, "support_triage", first.version_id, CHANGE, canary_percent=None)]
    made.append(rolled_back(dataclasses.replace(made[0], canary="c"), "support_triage", Change("bo", 2_000, "bad"),
                            to=None))  # fmt: skip
    compacted: dict[bytes, bytes] = {}
    for labels in made:
        for record in labels_records(catalogue, SETTINGS, labels) * 2:  # written twice: the same keys
            compacted[record.key] = record.value
    assert len(compacted) == 3  # two changes and the latest labels
    for key, value in compacted.items():
        log.apply(decode_config(catalogue, key, value))
    assert log.changes["support_triage"] == made and log.labels["support_triage"] == made[-1]
    assert (made[-1].author, made[-1].previous_canary, made[-1].change) == ("bo", "c", "rollback_canary")


def test_a_version_whose_id_is_not_its_digest_is_refused(catalogue: Catalogue, agents: dict[str, Agent]) -> None:
    version = version_of(agents["support_triage"], parent=None, change=CHANGE)
    forged = dataclasses.replace(version, version_id="0123456789ab")
    record = version_record(catalogue, SETTINGS, forged)
    with pytest.raises(DecodeError, match="not the digest"):
        decode_config(catalogue, record.key, record.value)


@pytest.mark.parametrize(
    "case",
    [
        "other key",
        "labels under a version key",
        "tombstone",
        "another schema",
        "not framed",
        "other agent",
        "another agent's change",
    ],
)
def test_records_that_are_not_ours_are_decode_errors(catalogue: Catalogue, agents: dict[str, Agent], case: str) -> None:
    version = version_of(agents["support_triage"], parent=None, change=CHANGE)
    key, value = version_key("support_triage", version.version_id), version_record(catalogue, SETTINGS, version).value
    if case == "other key":
        key = b"version/support_triage/ffffffffffff"
    elif case == "labels under a version key":
        value = labels_records(catalogue, SETTINGS, Labels("support_triage", version.version_id))[1].value
    elif case == "tombstone":
        value = None  # type: ignore[assignment]
    elif case == "another schema":
        value = wire.encode(catalogue.by_subject("keel.budget-decisions-value"), {"request_id": "r", "scope": "s",
                            "granted": True})  # fmt: skip
    elif case == "not framed":
        value = b'{"kind": "VERSION"}'
    elif case == "another agent's change":
        key = b"change/invoice_extraction/0000000001000/abc"
        value = labels_records(catalogue, SETTINGS, Labels("support_triage", version.version_id))[0].value
    else:
        key = labels_key("invoice_extraction")
        value = labels_records(catalogue, SETTINGS, Labels("support_triage", version.version_id))[1].value
    with pytest.raises(DecodeError):
        decode_config(catalogue, key, value)


def test_labels_must_name_versions_the_log_holds(agents: dict[str, Agent]) -> None:
    log = ConfigLog()
    with pytest.raises(AgentConfigRefused, match="does not hold"):
        log.apply(Labels("support_triage", "abc"))
    version = version_of(agents["support_triage"], parent=None, change=CHANGE)
    log.apply(version)
    log.apply(Labels("support_triage", version.version_id))
    assert log.version("support_triage", version.version_id[:4]) == version  # a prefix names it
    with pytest.raises(AgentConfigRefused, match="no version"):
        log.version("support_triage", "zzz")
    assert log.history("support_triage") == [version]


def _evaluation(version_id: str, *, passed: bool, run_id: str = "r1") -> Evaluation:
    figures = EvalFigures(3, 2, 1, 0, 2 / 3, 0.5, None, 0.001, 1, 10.0, 12.5)
    reasons = () if passed else ("agreement: not measured",)
    return Evaluation("support_triage", version_id, "base", "since 1h", run_id, passed, reasons, figures, figures,
                      "ana", 2_000, "m")  # fmt: skip


def test_evaluations_read_back_with_the_second_schema_and_versions_keep_the_first(
    catalogue: Catalogue, agents: dict[str, Agent]
) -> None:
    evaluation = _evaluation("abc", passed=False)
    record = eval_record(catalogue, SETTINGS, evaluation)
    assert record.key == eval_key("support_triage", "abc") and wire.read_header(record.value) == 16
    assert decode_config(catalogue, record.key, record.value) == evaluation
    version = version_of(agents["support_triage"], parent=None, change=CHANGE)
    assert wire.read_header(version_record(catalogue, SETTINGS, version).value) == 15  # what older workers read
    with pytest.raises(DecodeError):
        decode_config(catalogue, eval_key("support_triage", "other"), record.value)


def test_the_log_keeps_the_latest_evaluation_of_each_version() -> None:
    log = ConfigLog()
    for entry in (
        _evaluation("v1", passed=False),
        _evaluation("v2", passed=True),
        _evaluation("v1", passed=True, run_id="r2"),
    ):
        log.apply(entry)  # fmt: skip
    assert log.evaluations["support_triage", "v1"].run_id == "r2" and log.evaluations["support_triage", "v2"].passed
