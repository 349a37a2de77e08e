from datetime import UTC, datetime, timedelta

from streams.dlq import Selection, parse_since, replay_headers, select

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


def test_replay_keeps_the_original_headers_and_marks_the_replay() -> None:
    assert replay_headers(LETTERS[0]) == [
        ("trace", b"t"), ("keel.replay", b"1"), ("keel.replay.of", b"support.tickets/1/42"),
    ]  # fmt: skip
