"""`keel ingest serve` on the real broker: a signed webhook is written to its agent's input topic and
answered 202 after the broker's ack (read back with plain aiokafka, as the worker reads it); forged,
replayed and oversize ones are refused without writing anything; a resent one is the same event; and
with no broker the answer is 503 with Retry-After."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import TopicPartition
from harness import Stack, worker_stack

from streams.apps.ingest.serve import running
from streams.contracts.headers import H_EVENT_ID
from streams.core import wire
from streams.core.settings import REPO_ROOT, Settings
from streams.ingest.signatures import sign
from streams.kafka.connection import client_config
from streams.kafka.consumers import read_to_end

pytestmark = pytest.mark.integration
SECRET = "whsec-it-1234"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("keel-state")
    with worker_stack(kafka_bootstrap, state, provider="sim", base_url=sim_url, start=False) as stack:
        yield stack


@pytest.fixture
def settings(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HELPDESK_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BILLING_WEBHOOK_SECRET", SECRET)
    for source in ("helpdesk", "billing"):
        (tmp_path / f"{source}.yaml").write_text((REPO_ROOT / "deploy" / "sources" / f"{source}.yaml").read_text())
    return stack.settings.model_copy(update={"sources_dir": tmp_path, "produce_timeout_s": 10.0})


def _ticket(delivery: str) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps({"tenant": "northwind", "ticket": {"ticket_id": f"T-{delivery}", "body": "Charged twice"}})
    return body, {"X-GitHub-Delivery": delivery, **sign("github", body, SECRET.encode(), now_s=time.time())}


async def _records(settings: Settings, topic: str) -> list[Any]:
    """Everything in ``topic``, read as a downstream consumer would (plain aiokafka)."""
    tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
    return [record async for record in read_to_end(client_config(settings), tps)]


async def test_a_signed_webhook_is_written_once_acked_and_refused_ones_write_nothing(
    stack: Stack, settings: Settings
) -> None:
    topic = stack.topic("support.tickets")
    async with (
        running(settings, port=0) as (port, _),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        body, headers = _ticket("d-1")
        accepted = await http.post("/ingest/helpdesk", content=body, headers=headers)
        again = await http.post("/ingest/helpdesk", content=body, headers=headers)  # the sender sent it twice
        forged = await http.post("/ingest/helpdesk", content=body.replace(b"twice", b"thrice"), headers=headers)
        unsigned = await http.post("/ingest/helpdesk", content=body, headers={"X-GitHub-Delivery": "d-2"})
        old = orjson.dumps({"id": "evt_1", "data": {"object": {"document_id": "D-1", "text": "x"}}})
        stale = sign("stripe", old, SECRET.encode(), now_s=time.time() - 3600)
        replayed = await http.post("/ingest/billing", content=old, headers=stale)
        huge = await http.post("/ingest/helpdesk", content=b"x" * (300 * 1024), headers=headers)
        unknown = await http.post("/ingest/nobody", content=body, headers=headers)
        metrics = (await http.get("/metrics")).text
    assert (accepted.status_code, again.status_code) == (202, 202)
    assert accepted.json() == again.json() == {"event_id": "helpdesk:d-1"}
    assert [r.status_code for r in (forged, unsigned, replayed, huge, unknown)] == [401, 401, 401, 413, 404]
    assert "more than 300 s from now" in replayed.json()["error"]
    assert 'keel_ingest_signatures_refused_total{source="helpdesk"} 2.0' in metrics
    assert 'keel_ingest_produce_seconds_count{source="helpdesk"} 2.0' in metrics
    written = await _records(settings, topic)
    assert len(written) == 2  # the webhook and its resend: one event id, decided once by the worker
    assert await _records(settings, stack.topic("finance.invoices")) == []
    for record in written:
        value = wire.decode(stack.catalogue, record.value)
        assert value["event_id"] == "helpdesk:d-1" and value["business_key"] == "T-d-1"
        assert orjson.loads(value["payload"]) == {"ticket_id": "T-d-1", "body": "Charged twice"}
        assert dict(record.headers)[H_EVENT_ID] == b"helpdesk:d-1"
        assert record.key == b"T-d-1"


async def test_with_no_broker_the_answer_is_503_with_retry_after(settings: Settings) -> None:
    away = settings.model_copy(update={"bootstrap_servers": "127.0.0.1:9", "produce_timeout_s": 2.0})
    async with running(away, port=0) as (port, _), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        body, headers = _ticket("d-3")
        answer = await http.post("/ingest/helpdesk", content=body, headers=headers, timeout=30)
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
