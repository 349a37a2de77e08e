import struct

import pytest

from streams.emit import OutRecord
from streams.outcome_store import Recorded, decode_entry, encode_entry

RECORDS = [
    OutRecord("a.results", b"e1", b"\x00\x00\x00\x00\x66\xff", (("keel.event_id", b"e1"), ("empty", None))),
    OutRecord("keel.audit", b"e1", bytes(range(256)), ()),
    OutRecord("a.retry.1", None, b"raw", (), partition=3),
]


def test_entries_survive_the_round_trip_byte_for_byte() -> None:
    for entry in (Recorded(RECORDS), Recorded(RECORDS[2:], retry_tier=1)):
        assert decode_entry(encode_entry(entry)) == entry


@pytest.mark.parametrize(
    "blob", [b"", b"[]", b"\x01\x00", encode_entry(Recorded(RECORDS))[:-3], b"\x01" + b"\x00" * 12]
)
def test_a_blob_keel_did_not_write_is_refused(blob: bytes) -> None:
    with pytest.raises((ValueError, struct.error)):
        decode_entry(blob)


def test_a_final_outcome_settles_every_tier_and_a_waiting_event_only_earlier_ones() -> None:
    assert all(Recorded(RECORDS).settles(tier) for tier in range(4))
    waiting = Recorded(RECORDS[2:], retry_tier=2)
    assert [waiting.settles(tier) for tier in range(4)] == [True, True, False, False]
