"""What every long-running reader shares: skipped records counted and logged once per cause, Kafka
reads asked again while the error is transient, and background tasks whose failure ends the process."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)
from kafka_stand_in import Record
from prometheus_client import CollectorRegistry, generate_latest

from streams.apps import faust_app
from streams.core.errors import InvalidUtf8, NotConfluentFramed
from streams.kafka.consumers import until_read
from streams.kafka.skipped import SkippedRecords


def at(offset: int, partition: int = 0) -> Record:
    return Record("t", partition, offset, None, None)


def test_every_skip_is_counted_and_the_first_per_partition_and_reason_logged(caplog: pytest.LogCaptureFixture) -> None:
    skipped, registry = SkippedRecords(), CollectorRegistry()
    skipped.register(registry)
    with caplog.at_level(logging.INFO, logger="streams.kafka.skipped"):
        for offset in range(1000):
            skipped.skip("feed", at(offset), NotConfluentFramed("first byte is 0x7b"))
        skipped.skip("feed", at(0, partition=1), NotConfluentFramed("first byte is 0x7b"))
        skipped.skip("feed", at(5), InvalidUtf8("a string field"))
    assert skipped.count("feed", "t", "wrong_magic_byte") == 1001 and skipped.count("feed", "t", "invalid_utf8") == 1
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(logged) == 3 and "t/0/0 skipped (wrong_magic_byte): first byte is 0x7b" in logged[0]
    assert b'keel_records_skipped_total{reader="feed",reason="wrong_magic_byte",topic="t"} 1001.0' in generate_latest(
        registry
    )


async def test_reads_are_asked_again_while_kafka_errors_are_transient() -> None:
    errors: list[Exception] = [KafkaConnectionError(), NotLeaderForPartitionError(), KafkaTimeoutError()]

    async def read() -> str:
        if errors:
            raise errors.pop(0)
        return "records"

    assert await until_read(read, what="a test read", first_delay_s=0) == "records"
    assert not errors


@pytest.mark.parametrize("error", [TopicAuthorizationFailedError(), ValueError("a bug")])
async def test_any_other_error_is_raised(error: Exception) -> None:
    async def read() -> str:
        raise error

    with pytest.raises(type(error)):
        await until_read(read, what="a test read", first_delay_s=0)


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, BaseException]]:
    """``exit_for_restart`` (exit code 70), recorded instead of ending the test run."""
    calls: list[tuple[str, BaseException]] = []

    def record(what: str, exc: BaseException) -> None:
        calls.append((what, exc))

    monkeypatch.setattr(faust_app, "exit_for_restart", record)
    return calls


async def test_a_background_task_that_fails_ends_the_process(exits: list[tuple[str, BaseException]]) -> None:
    async def follow() -> None:
        raise TopicAuthorizationFailedError()

    task = asyncio.create_task(follow())
    task.add_done_callback(faust_app.exit_when_failed("following failed"))
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert [(what, type(exc)) for what, exc in exits] == [("following failed", TopicAuthorizationFailedError)]


async def test_a_cancelled_or_finished_task_does_not(exits: list[tuple[str, BaseException]]) -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def done() -> Any:
        return None

    cancelled, finished = asyncio.create_task(forever()), asyncio.create_task(done())
    for task in (cancelled, finished):
        task.add_done_callback(faust_app.exit_when_failed("stopped"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, finished, return_exceptions=True)
    await asyncio.sleep(0)
    assert exits == []
