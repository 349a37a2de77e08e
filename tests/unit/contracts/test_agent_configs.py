"""keel.agent-configs values: what is written reads back; what anyone else writes there is refused."""

from __future__ import annotations

import dataclasses

import pytest

from streams.agent.definition import Agent
from streams.agent.versions import Change, Labels, promoted, version_of
from streams.contracts.agent_configs import (
    ConfigLog,
    decode_config,
    labels_key,
    labels_record,
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
    record = labels_record(catalogue, SETTINGS, labels)
    assert decode_config(catalogue, record.key, record.value) == labels


def test_a_version_whose_id_is_not_its_digest_is_refused(catalogue: Catalogue, agents: dict[str, Agent]) -> None:
    version = version_of(agents["support_triage"], parent=None, change=CHANGE)
    forged = dataclasses.replace(version, version_id="0123456789ab")
    record = version_record(catalogue, SETTINGS, forged)
    with pytest.raises(DecodeError, match="not the digest"):
        decode_config(catalogue, record.key, record.value)


@pytest.mark.parametrize(
    "case", ["other key", "labels under a version key", "tombstone", "another schema", "not framed", "other agent"]
)
def test_records_that_are_not_ours_are_decode_errors(catalogue: Catalogue, agents: dict[str, Agent], case: str) -> None:
    version = version_of(agents["support_triage"], parent=None, change=CHANGE)
    key, value = version_key("support_triage", version.version_id), version_record(catalogue, SETTINGS, version).value
    if case == "other key":
        key = b"version/support_triage/ffffffffffff"
    elif case == "labels under a version key":
        value = labels_record(catalogue, SETTINGS, Labels("support_triage", version.version_id)).value
    elif case == "tombstone":
        value = None  # type: ignore[assignment]
    elif case == "another schema":
        value = wire.encode(catalogue.by_subject("keel.budget-decisions-value"), {"request_id": "r", "scope": "s",
                            "granted": True})  # fmt: skip
    elif case == "not framed":
        value = b'{"kind": "VERSION"}'
    else:
        key = labels_key("invoice_extraction")
        value = labels_record(catalogue, SETTINGS, Labels("support_triage", version.version_id)).value
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
