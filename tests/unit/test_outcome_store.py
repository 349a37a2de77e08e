import os
import struct
from pathlib import Path

import pytest

from streams.emit import OutRecord
from streams.outcome_store import Recorded, _Entries, decode_entry, encode_entry

RECORDS = [
    OutRecord("a.results", b"e1", b"\x00\x00\x00\x00\x66\xff", (("keel.event_id", b"e1"), ("empty", None))),
    OutRecord("keel.audit", b"e1", bytes(range(256)), ()),
    OutRecord("a.retry.1", None, b"raw", (), partition=3),
]


def test_entries_survive_the_round_trip_byte_for_byte() -> None:
    for entry in (Recorded(RECORDS), Recorded(RECORDS[2:], next_pass=1)):
        assert decode_entry(encode_entry(entry)) == entry


@pytest.mark.parametrize(
    "blob", [b"", b"[]", b"\x01\x00", encode_entry(Recorded(RECORDS))[:-3], b"\x01" + b"\x00" * 12]
)
def test_a_blob_keel_did_not_write_is_refused(blob: bytes) -> None:
    with pytest.raises((ValueError, struct.error)):
        decode_entry(blob)


def test_a_final_outcome_settles_every_tier_and_a_waiting_event_only_earlier_ones() -> None:
    assert all(Recorded(RECORDS).settles(tier) for tier in range(4))
    waiting = Recorded(RECORDS[2:], next_pass=2)
    assert [waiting.settles(tier) for tier in range(4)] == [True, True, False, False]


def test_loaded_entries_later_writes_win_and_tombstones_remove_across_batches() -> None:
    entries = _Entries(batch=3)
    entries.put(0, [(b"a", b"1"), (b"b", b"2")])  # still buffered
    entries.put(1, [(b"a", b"other partition")])  # the third: written to SQLite
    entries.put(0, [(b"a", b"1 again"), (b"b", None), (b"c", b"3")])
    assert [entries.get(0, k) for k in (b"a", b"b", b"c", b"d")] == [b"1 again", None, b"3", None]
    entries.drop(0)
    assert [entries.get(0, k) for k in (b"a", b"c")] == [None, None]
    assert entries.get(1, b"a") == b"other partition"


def test_loaded_entries_do_not_stay_in_memory() -> None:
    entries, blob = _Entries(), os.urandom(4000)
    before = _rss_kb()
    for i in range(20_000):  # 80 MB of entries
        entries.put(0, [(str(i).encode(), blob)])
    assert _rss_kb() - before < 30_000  # SQLite's page cache stays; the entries are in its temporary file
    assert entries.get(0, b"19999") == blob and entries.get(0, b"0") == blob


def _rss_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0])
