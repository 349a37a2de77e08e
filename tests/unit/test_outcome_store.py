from streams.emit import OutRecord
from streams.outcome_store import decode_records, encode_records


def test_records_survive_the_round_trip_byte_for_byte() -> None:
    records = [
        OutRecord("a.results", b"e1", b"\x00\x00\x00\x00\x66\xff", (("keel.event_id", b"e1"), ("empty", None))),
        OutRecord("keel.audit", b"e1", bytes(range(256)), ()),
    ]
    assert decode_records(encode_records(records)) == records
