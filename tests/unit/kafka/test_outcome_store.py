import dataclasses
import os
import struct
from pathlib import Path

import pytest

from streams.contracts.out_record import OutRecord
from streams.core.domain import SourceRecord
from streams.kafka.outcome_store import Recorded, _Entries, decode_entry, encode_entry, input_digest

RECORDS = [
    OutRecord("a.results", b"e1", b"\x00\x00\x00\x00\x66\xff", (("keel.event_id", b"e1"), ("empty", None))),
    OutRecord("keel.audit", b"e1", bytes(range(256)), ()),
    OutRecord("a.retry.1", None, b"raw", (), partition=3),
]


SOURCE = SourceRecord("a.in", 2, 7, None, b"key", b"value")


def test_entries_survive_the_round_trip_byte_for_byte() -> None:
    for entry in (Recorded(RECORDS, 0, input_digest(SOURCE), SOURCE.position), Recorded(RECORDS[2:], 3)):
        assert decode_entry(encode_entry(entry)) == entry


def _v1_entry(next_pass: int, records: list[OutRecord]) -> bytes:
    """An entry as version 1 wrote it: the next pass where version 2 holds the pass that ran."""
    v2 = encode_entry(Recorded(records, 0))
    return b"\x01" + struct.pack(">i", next_pass) + v2[1 + 4 + 4 + 4 :]  # less version 2's pass, digest, origin


def test_a_version_1_entry_still_answers_as_it_did_and_lets_a_replay_run() -> None:
    final, waiting = decode_entry(_v1_entry(-1, RECORDS)), decode_entry(_v1_entry(2, RECORDS[2:]))
    assert (final.records, final.passed, waiting.passed) == (RECORDS, None, 1)
    assert all(final.settles(p) for p in range(4)) and not final.settles(1, replay=True)
    assert [waiting.settles(p) for p in range(4)] == [True, True, False, False]
    assert final.same_input(SOURCE)  # no digest recorded: every delivery is taken as the event's


@pytest.mark.parametrize(
    "blob", [b"", b"[]", b"\x01\x00", encode_entry(Recorded(RECORDS, 0))[:-3], b"\x02" + b"\x00" * 12, b"\x03"]
)
def test_a_blob_keel_did_not_write_is_refused(blob: bytes) -> None:
    with pytest.raises((ValueError, struct.error)):
        decode_entry(blob)


def test_an_entry_settles_its_own_pass_and_earlier_ones_only() -> None:
    entry = Recorded(RECORDS, 2)
    assert [entry.settles(p) for p in range(5)] == [True, True, True, False, False]
    assert entry.settles(2, replay=True) and not entry.settles(3, replay=True)


def test_an_entry_knows_its_input_by_key_and_value() -> None:
    entry = Recorded(RECORDS, 0, input_digest(SOURCE), SOURCE.position)
    moved = dataclasses.replace(SOURCE, topic="a.retry.1", offset=99, headers=(("h", b"v"),))
    assert entry.same_input(moved)  # a retry tier's record, a redelivery, a re-run: the same input
    for other in (dataclasses.replace(SOURCE, value=b"value2"), dataclasses.replace(SOURCE, key=None)):
        assert not entry.same_input(other)
    assert input_digest(SourceRecord("t", 0, 0, None, b"ab", b"c")) != input_digest(
        SourceRecord("t", 0, 0, None, b"a", b"bc")
    )


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


async def test_a_tool_journal_is_kept_beside_the_entries_under_a_key_no_event_id_takes() -> None:
    from streams.core.kafka_client import ClientConfig
    from streams.kafka.outcome_store import JOURNAL_PREFIX, OutcomeStore

    sent: list[tuple[str, bytes, bytes, int]] = []

    async def send(topic: str, key: bytes, value: bytes, partition: int) -> None:
        sent.append((topic, key, value, partition))

    store = OutcomeStore(ClientConfig(bootstrap_servers="127.0.0.1:9"), "a.outcomes", send)
    store._loaded.add(2)  # the partition as loaded: nothing to read from a broker
    journal = store.journal("e1", partition=2)
    assert await journal.load() is None
    await journal.save(b"step 1")
    await store.record("e1", Recorded(RECORDS, 0, b"d" * 16, "a.in/2/7"), partition=2)
    assert await journal.load() == b"step 1"
    assert (await store.recorded("e1", partition=2)) is not None
    assert [key for _, key, _, _ in sent] == [JOURNAL_PREFIX + b"e1", b"e1"]
    with pytest.raises(UnicodeDecodeError):
        JOURNAL_PREFIX.decode("utf-8")  # so no event id (a str) encodes to a journal's key
    store.close()
