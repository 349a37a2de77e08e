from datetime import UTC, datetime, timedelta

from sample_keys import KEYS

from streams.cli.dlq import Selection, parse_since, replay_record, select
from streams.contracts.control import H_SIGNATURE, Control, read_control
from streams.core.domain import SourceRecord

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def dead(event_id: str, agent: str, reason: str, minutes_ago: int) -> dict:
    return {
        "event_id": event_id, "agent": agent, "reason": reason, "failed_at": NOW - timedelta(minutes=minutes_ago),
        "original": {"topic": "support.tickets", "partition": 1, "offset": 42, "key": b"k", "value": b"v",
                     "headers": [{"key": "trace", "value": b"t"}, {"key": "keel.replay", "value": b"1"}]},
    }  # fmt: skip


LETTERS = [
    dead("a", "support_triage", "output_schema_violation", 90),
    dead("b", "support_triage", "provider_5xx", 30),
    dead("c", "invoice_extraction", "provider_5xx", 10),
]


def test_select_by_agent_reason_time_and_id() -> None:
    assert [d["event_id"] for d in select(LETTERS, Selection())] == ["a", "b", "c"]
    assert [d["event_id"] for d in select(LETTERS, Selection(agent="support_triage"))] == ["a", "b"]
    assert [d["event_id"] for d in select(LETTERS, Selection(reason="provider_5xx"))] == ["b", "c"]
    assert [d["event_id"] for d in select(LETTERS, Selection(since=NOW - timedelta(hours=1)))] == ["b", "c"]
    assert [d["event_id"] for d in select(LETTERS, Selection(event_ids=frozenset({"c", "z"})))] == ["c"]


def test_since_takes_durations_and_times() -> None:
    assert parse_since("30m", now=NOW) == NOW - timedelta(minutes=30)
    assert parse_since("7d", now=NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-11-24T10:00:00", now=NOW) == datetime(2026, 11, 24, 10, tzinfo=UTC)
    assert parse_since(None, now=NOW) is None


def test_a_replay_is_the_original_record_in_its_partition_with_signed_replay_headers() -> None:
    signed = dict(LETTERS[0], pass_number=2)
    signed["original"] = dict(
        LETTERS[0]["original"], headers=[*LETTERS[0]["original"]["headers"], {"key": H_SIGNATURE, "value": b"v1.x.y"}]
    )
    record = replay_record(signed, KEYS)
    assert (record.topic, record.partition, record.key, record.value) == ("support.tickets", 1, b"k", b"v")
    headers = [(k, v) for k, v in record.headers if k != H_SIGNATURE]
    assert headers == [
        ("trace", b"t"), ("keel.replay", b"1"), ("keel.replay.of", b"support.tickets/1/42"), ("keel.replay.pass", b"3"),
    ]  # fmt: skip  # the original's own control headers (a replay of a replay, a forged one) are not carried
    read_back = SourceRecord(record.topic, 1, 900, None, record.key, record.value, record.headers)
    assert read_control(KEYS, read_back) == Control(3, replay=True)
    assert replay_record(LETTERS[1], KEYS).headers[-2] == ("keel.replay.pass", b"1")  # a dead letter of before passes
