"""Control headers: honoured only when Keel signed them for exactly this record."""

import dataclasses

import pytest
from sample_keys import KEYS, OLD_KEYS

from streams.contracts.control import (
    H_REPLAY_CONFIG,
    H_REPLAY_PASS,
    H_SIGNATURE,
    PLAIN,
    Control,
    ControlKeys,
    read_control,
)
from streams.contracts.headers import H_RERUN_NUMBER, H_RERUN_OF, H_SKIP_MODEL
from streams.contracts.out_record import OutRecord
from streams.core.domain import SourceRecord
from streams.core.errors import ControlHeaderForged, ControlHeaderMalformed

RERUN = ((H_RERUN_OF, b"ev-1"), (H_RERUN_NUMBER, b"2"), (H_SKIP_MODEL, b"sim/a"))


def signed(headers=RERUN, *, keys: ControlKeys = KEYS) -> SourceRecord:
    record = keys.sign(OutRecord("support.tickets", b"key", b"value", (("trace", b"t"), *headers), partition=1))
    return SourceRecord(record.topic, 1, 77, 5, record.key, record.value, record.headers)


def test_a_signed_rerun_is_read_back_with_its_pass_and_models() -> None:
    assert read_control(KEYS, signed()) == Control(2, ("sim/a",))


def test_a_record_without_control_headers_is_plain_and_unsigned_ones_are_ignored() -> None:
    assert read_control(KEYS, SourceRecord("t", 0, 0, None, None, b"v", (("trace", b"t"),))) is PLAIN
    unsigned = SourceRecord("t", 0, 0, None, None, b"v", (*RERUN, ("keel.replay", b"1")))
    assert read_control(KEYS, unsigned) == Control(ignored=True)


@pytest.mark.parametrize(
    "change",
    [
        {"value": b"another value"},  # the signature copied onto another record
        {"key": b"another key"},
        {"partition": 2},  # moved to a partition whose store holds no entry for it
        {"topic": "finance.invoices"},
    ],
)
def test_a_signature_holds_only_for_the_record_it_was_made_for(change: dict) -> None:
    with pytest.raises(ControlHeaderForged):
        read_control(KEYS, dataclasses.replace(signed(), **change))


@pytest.mark.parametrize(
    "headers",
    [
        lambda h: [(k, b"9" if k == H_RERUN_NUMBER else v) for k, v in h],  # the pass changed
        lambda h: [*h, (H_SKIP_MODEL, b"sim/b")],  # a control header added
        lambda h: [(k, v) for k, v in h if k != H_SKIP_MODEL],  # one taken away
        lambda h: [(k, b"v1.k2." + b"0" * 64 if k == H_SIGNATURE else v) for k, v in h],
        lambda h: [(k, b"v1.nobody.abc" if k == H_SIGNATURE else v) for k, v in h],
        lambda h: [(k, b"\xff\xfe" if k == H_SIGNATURE else v) for k, v in h],
        lambda h: [(k, None if k == H_SIGNATURE else v) for k, v in h],
    ],
)
def test_a_changed_or_made_up_signature_is_forged(headers) -> None:
    record = signed()
    with pytest.raises(ControlHeaderForged):
        read_control(KEYS, dataclasses.replace(record, headers=tuple(headers(record.headers))))


@pytest.mark.parametrize(
    "headers",
    [
        ((H_RERUN_OF, b"ev"), (H_RERUN_NUMBER, b"two")),
        ((H_RERUN_OF, b"ev"), (H_RERUN_NUMBER, b"0")),
        ((H_RERUN_OF, b"ev"), (H_RERUN_NUMBER, b"9" * 5000)),  # int() of it would take a while, or refuse
        ((H_RERUN_OF, b"ev"),),  # no pass
        ((H_RERUN_NUMBER, b"2"), (H_REPLAY_PASS, b"2")),  # both a re-run and a replay
        ((H_RERUN_NUMBER, b"2"), (H_SKIP_MODEL, b"\xff")),  # not UTF-8
        ((H_RERUN_NUMBER, b"2"), (H_RERUN_NUMBER, b"3")),  # repeated
    ],
)
def test_a_signed_header_that_cannot_be_read_is_malformed(headers) -> None:
    with pytest.raises(ControlHeaderMalformed):
        read_control(KEYS, signed(headers))


def test_two_signatures_or_a_signature_over_nothing_are_malformed() -> None:
    record = signed()
    twice = dataclasses.replace(record, headers=(*record.headers, record.headers[-1]))
    alone = dataclasses.replace(record, headers=(("trace", b"t"), record.headers[-1]))
    for bad in (twice, alone):
        with pytest.raises(ControlHeaderMalformed):
            read_control(KEYS, bad)


def test_a_key_rotates_without_downtime() -> None:
    """Old processes sign with k1 while new ones, which know both keys, sign with k2."""
    assert read_control(KEYS, signed(keys=OLD_KEYS)).pass_number == 2  # signed before the rotation
    with pytest.raises(ControlHeaderForged):  # k1 dropped before k2 was known everywhere: refused, never trusted
        read_control(OLD_KEYS, signed(keys=KEYS))


def test_a_signed_record_needs_a_partition_and_a_listed_signing_key() -> None:
    with pytest.raises(ValueError, match="partition"):
        KEYS.sign(OutRecord("t", b"k", b"v", RERUN))
    with pytest.raises(ValueError, match="signing key"):
        ControlKeys("k3", {"k1": b"x" * 32})


def test_a_replay_may_be_pinned_to_a_version_and_only_a_replay() -> None:
    replay = ((H_REPLAY_PASS, b"2"), (H_REPLAY_CONFIG, b"0123456789ab"))
    assert read_control(KEYS, signed(replay)) == Control(2, replay=True, config_version="0123456789ab")
    for headers in (
        ((H_REPLAY_PASS, b"2"), (H_REPLAY_CONFIG, b"../../etc")),
        (*RERUN, (H_REPLAY_CONFIG, b"0123456789ab")),
    ):
        with pytest.raises(ControlHeaderMalformed, match="version id"):
            read_control(KEYS, signed(headers))
