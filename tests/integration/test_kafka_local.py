"""The local broker from connectors/local/kafka_local.py, against real Kafka processes on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

from connectors.local.kafka_local import (
    REPO_ROOT,
    KafkaPortInUse,
    LocalKafka,
    LocalKafkaError,
    start,
    status,
    stop,
    wipe,
)

UNKNOWN_TOPIC_OR_PARTITION = 3  # Kafka protocol error code


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _create_topic(bootstrap: str, name: str, *, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(name, partitions, 1)])
        assert [(topic, code) for topic, code, *_ in response.topic_errors] == [(name, 0)]
    finally:
        await admin.close()


async def _list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


def _accepts_connections(port: int) -> bool:
    with socket.socket() as client:
        return client.connect_ex(("127.0.0.1", port)) == 0


async def test_broker_round_trips_a_record(kafka_bootstrap: str) -> None:
    topic = _unique("keel-test-roundtrip")
    await _create_topic(kafka_bootstrap, topic, partitions=2)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"ticket-1", partition=1)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    assert (record.partition, record.offset, record.key, record.value) == (1, sent.offset, b"ticket-1", b"hello")
    assert len(consumer.partitions_for_topic(topic) or ()) == 2


async def test_missing_topics_are_not_auto_created(kafka_bootstrap: str) -> None:
    topic = _unique("keel-test-missing")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=1500)
    await producer.start()
    try:
        with pytest.raises((UnknownTopicOrPartitionError, KafkaTimeoutError)):
            await producer.send_and_wait(topic, b"nobody reads this")
    finally:
        await producer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        # aiokafka's metadata requests ask for auto-creation, so this would create it if the broker let it.
        [described] = await admin.describe_topics([topic])
        assert described["error_code"] == UNKNOWN_TOPIC_OR_PARTITION
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


def test_status_reports_the_session_broker(kafka_bootstrap: str) -> None:
    if os.environ.get("KEEL_BOOTSTRAP_SERVERS"):
        pytest.skip("the session uses an external broker")
    port = int(kafka_bootstrap.rsplit(":", 1)[1])
    broker = LocalKafka(port=port, state_dir=REPO_ROOT / ".keel" / f"test-kafka-{port}")
    facts = status(broker)
    assert facts.running and facts.ready
    assert facts.bootstrap == kafka_bootstrap == broker.bootstrap
    assert facts.pid is not None and broker.pid_file.read_text().strip() == str(facts.pid)
    assert facts.data_dir == broker.data_dir and (facts.data_dir / "meta.properties").is_file()
    assert "Kafka Server started" in facts.log_file.read_text()


def test_second_broker_restarts_with_its_data_and_is_wiped(kafka_bootstrap: str) -> None:
    # kafka_bootstrap is asked for its session lock: two test sessions never share this broker either.
    broker = LocalKafka(port=29192, state_dir=REPO_ROOT / ".keel" / "test-kafka-29192")
    stop(broker, force=True)
    wipe(broker)
    kept_topic = _unique("keel-test-kept")
    try:
        start(broker)
        first = status(broker)
        assert first.running and first.ready and first.bootstrap == "127.0.0.1:29192"
        start(broker)  # idempotent: the running broker is kept
        assert status(broker).pid == first.pid
        asyncio.run(_create_topic(broker.bootstrap, kept_topic, partitions=1))

        assert stop(broker) is True
        stopped = status(broker)
        assert (stopped.running, stopped.ready, stopped.pid) == (False, False, None)
        assert not broker.pid_file.exists() and not _accepts_connections(29192)

        start(broker)
        again = status(broker)
        assert again.running and again.ready and again.pid != first.pid
        assert kept_topic in asyncio.run(_list_topics(broker.bootstrap))

        assert stop(broker, force=True) is True
        assert not status(broker).running and not _accepts_connections(29192)
        assert stop(broker) is False
        assert wipe(broker) is True
        assert not broker.state_dir.exists()
    finally:
        stop(broker, force=True)
        wipe(broker)


def test_start_refuses_a_port_that_another_process_holds(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        broker = LocalKafka(port=port, state_dir=tmp_path / "kafka")
        with pytest.raises(KafkaPortInUse, match=f"127.0.0.1:{port} is already in use"):
            start(broker, wait_s=10)
    assert not status(broker).running
    assert not broker.data_dir.exists()  # refused before formatting anything


def test_a_stale_pid_file_never_signals_an_unrelated_process(tmp_path: Path) -> None:
    broker = LocalKafka(port=29392, state_dir=tmp_path / "kafka")
    broker.state_dir.mkdir()
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        broker.pid_file.write_text(f"{bystander.pid}\n")
        facts = status(broker)
        assert (facts.running, facts.pid) == (False, None)
        assert stop(broker) is False
        assert not broker.pid_file.exists()  # the stale file is cleared
        broker.pid_file.write_text(f"{bystander.pid}\n")
        assert stop(broker, force=True) is False
        assert bystander.poll() is None  # still alive: never signalled
    finally:
        bystander.kill()
        bystander.wait()


def test_wipe_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    broker = LocalKafka(port=29392, state_dir=tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(LocalKafkaError, match=r"notes\.txt"):
        wipe(broker)
    assert (tmp_path / "notes.txt").read_text() == "mine"
