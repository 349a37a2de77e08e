"""The review service on the real broker: a queue loaded from the review topics, decisions written and
read back, the applier's results, dead letters and audit records, and restarts that lose nothing and
apply nothing twice."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import TopicPartition
from harness import free_port, get_when_up, group_offsets, polled, scrape_metrics
from review_broker import AUDIT, DLQ, RESULTS, by_event, outcomes_when, publish_items, topic_values
from review_samples import TRIAGE_OUTPUT, review_record

from streams.agent.definition import load_agents
from streams.apps.review.shell import ReviewProcess, build_process, running
from streams.cli.demo import review_service
from streams.cli.local_stack import worker_process
from streams.cli.review import review_stats
from streams.contracts.topics import applier_group
from streams.core import wire
from streams.core.alert import Alert
from streams.core.catalogue import Catalogue
from streams.core.review_item import Decision, DecisionDraft, Refused
from streams.core.settings import Settings
from streams.kafka.alert_log import read_alerts
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer
from streams.review.records import decision_record, decode_item

pytestmark = pytest.mark.integration
EDITED = {**TRIAGE_OUTPUT, "priority": "urgent", "summary": "fixed by a human"}


def _config_version(process: ReviewProcess, agent: str) -> str:
    return next(a.config_version for a in process.agents if a.name == agent)


async def refused(coroutine: Any) -> Refused:
    with pytest.raises(Refused) as caught:
        await coroutine
    return caught.value


async def test_decisions_become_results_dead_letters_and_audit(settings: Settings, catalogue: Catalogue) -> None:
    approve, edit, reject, double, flagged, left = await publish_items(
        settings, catalogue, ["review", "review", "review", "review", "flag", "review"]
    )
    process = build_process(settings)
    async with running(settings, process) as served:
        service = process.service
        assert service.agents() == ["invoice_extraction", "support_triage"]
        page = service.pending(agents=frozenset({"support_triage"}), min_age_s=30)
        assert [i.item_id for i in page.items] == [approve, edit, reject, double, flagged, left] and page.total == 6
        assert service.pending(agents=None, min_age_s=3600).total == 0

        approved = await service.decide(DecisionDraft(approve, "approve", "ann"))
        await service.decide(DecisionDraft(edit, "edit", "ann", output_json=orjson.dumps(EDITED).decode()))
        await service.decide(DecisionDraft(reject, "reject", "bob", reason="the customer is not billed twice"))
        await service.decide(DecisionDraft(flagged, "approve", "bob"))
        first, second = await asyncio.gather(
            service.decide(DecisionDraft(double, "approve", "ann")),
            service.decide(DecisionDraft(double, "reject", "bob", reason="no")),
            return_exceptions=True,
        )
        assert isinstance(first, Decision) and isinstance(second, Refused) and second.code == "already_decided"
        assert (
            await refused(service.decide(DecisionDraft(double, "reject", "bob", reason="x")))
        ).code == "already_decided"
        assert (await refused(service.decide(DecisionDraft("no-such-item", "approve", "ann")))).code == "no_such_item"
        bad_edit = await refused(service.decide(DecisionDraft(left, "edit", "ann", output_json='{"category": 3}')))
        assert bad_edit.code == "invalid_edit" and "$.category" in bad_edit.message
        assert (await refused(service.decide(DecisionDraft(left, "reject", "ann")))).code == "missing_reason"

        state = service.get(approve)
        assert state is not None and state.decision == approved
        assert [i.item_id for i in service.pending(agents=None).items] == [left]

        seen = await outcomes_when(  # each topic read apart: wait for every record expected on each
            settings, catalogue, lambda s: len(s[AUDIT]) >= 5 and len(s[RESULTS]) >= 3 and len(s[DLQ]) >= 1
        )
        results = {v["event_id"]: v for v in seen[RESULTS]}
        assert set(results) == {approve, edit, double}  # the flagged result was released by the worker
        assert results[approve]["reviewer"] == "ann" and results[approve]["human_override"] is False
        assert results[edit]["output"]["summary"] == "fixed by a human" and results[edit]["human_override"] is True
        [dead] = seen[DLQ]
        assert dead["event_id"] == reject and dead["reason"] == "review_rejected"
        assert "not billed twice" in dead["message"] and dead["original"]["value"][:1] == b"\x00"
        audits = {v["event_id"]: v for v in seen[AUDIT]}
        assert len(seen[AUDIT]) == 5 and set(audits) == {approve, edit, reject, double, flagged}
        assert (audits[flagged]["route"], audits[flagged]["review_action"]) == ("flag", "approve")
        assert (audits[reject]["outcome"], audits[reject]["review_reason"]) == (
            "dead_letter",
            "the customer is not billed twice",
        )
        assert audits[double]["decision_id"] == first.decision_id
        written = await topic_values(settings, catalogue, "keel.review.decisions")
        assert [d["item_id"] for d in written].count(double) == 1  # the second was refused before writing

        samples = await scrape_metrics(served.port)
        assert samples[("keel_review_queue_depth", frozenset({("agent", "support_triage")}))] == 1
        triage = {("agent", "support_triage"), ("config_version", _config_version(process, "support_triage"))}
        assert samples[("keel_review_decisions_total", frozenset({*triage, ("action", "approve")}))] == 3
        assert samples[("keel_review_time_to_decision_seconds_count", frozenset(triage))] == 5
        async with httpx.AsyncClient() as client:
            index = await client.get(f"http://127.0.0.1:{served.port}/")
        assert index.status_code == 303 and index.headers["location"].startswith("/login")  # the UI asks for a login


async def test_a_restart_shows_the_same_queue_and_applies_nothing_twice(
    settings: Settings, catalogue: Catalogue
) -> None:
    decided, waiting, also_waiting = await publish_items(settings, catalogue, ["review", "review", "flag"])
    process = build_process(settings)
    async with running(settings, process):
        decision = await process.service.decide(DecisionDraft(decided, "approve", "ann"))
        await outcomes_when(settings, catalogue, lambda s: len(s[AUDIT]) >= 1)
        before = [i.item_id for i in process.service.pending(agents=None).items]
    assert before == [waiting, also_waiting]
    committed, ends = await applier_progress(settings)
    assert committed == ends and sum(ends.values()) == 1  # the applier committed what it applied

    # A second decision on the decided item, written past the service's checks (another tool, a race
    # between two services), and a physical copy of the first: neither may become an outcome.
    later = replace(decision, decision_id="later", action="reject", reviewer="eve", decided_at_ms=1, reason="x")
    async with RecordProducer(client_config(settings)) as producer:
        topic = settings.topic("keel.review.decisions")
        copy = decision_record(catalogue, topic, decision)
        orphan = replace(
            decision, decision_id="o", item_id="no-such-item", config_version="c", reviewer="eve", decided_at_ms=1
        )
        await producer.send_all(
            [decision_record(catalogue, topic, later), copy, decision_record(catalogue, topic, orphan)]
        )

    restarted = build_process(settings)
    async with running(settings, restarted) as served:
        after = restarted.service.pending(agents=None)
        assert [i.item_id for i in after.items] == before and after.total == 2
        state = restarted.service.get(decided)
        assert state is not None and state.decision == decision
        committed, ends = await applier_progress(settings)
        assert committed == ends and sum(ends.values()) == 4  # the applier read all four
        samples = await scrape_metrics(served.port)
        refused_key = (
            "keel_review_decisions_refused_total",
            frozenset({("agent", "support_triage"), ("why", "already_decided")}),
        )
        assert samples[refused_key] == 2
        orphan_key = (
            "keel_review_decisions_refused_total",
            frozenset({("agent", "support_triage"), ("why", "no_such_item")}),
        )
        assert samples[orphan_key] == 1
        assert not [key for key in samples if key[0] == "keel_review_decisions_total"]
    seen = await outcomes_when(settings, catalogue, lambda s: False, wait_s=0)
    assert by_event(seen[RESULTS]) == {decided: 1} and by_event(seen[AUDIT]) == {decided: 1} and seen[DLQ] == []


async def applier_progress(settings: Settings) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """The applier group's committed offsets and the decisions topic's end offsets, of the partitions
    that have records, once they are equal or 15 s have passed."""
    return await group_offsets(settings, "keel.review.decisions", applier_group(settings), wait_s=15, nonempty=True)


async def test_keel_review_serve_runs_until_told_to_stop(settings: Settings, catalogue: Catalogue) -> None:
    await publish_items(settings, catalogue, ["review", "review"])
    port = free_port()
    with worker_process(settings, {"KEEL_REVIEW_WEB_PORT": str(port)}, command="review", args=("serve",)) as serve:
        samples = await scrape_metrics(port)
        assert samples[("keel_review_queue_depth", frozenset({("agent", "support_triage")}))] == 2
        assert samples[("keel_review_queue_depth", frozenset({("agent", "invoice_extraction")}))] == 0
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    log = settings.state_dir / "logs" / f"review-serve-{settings.namespace}.log"  # complete: the process has ended
    assert f"review service on http://127.0.0.1:{port}/" in log.read_text()


async def test_keel_run_serves_the_queue_to_a_reviewer_of_its_own(settings: Settings, catalogue: Catalogue) -> None:
    [held] = await publish_items(settings, catalogue, ["review"])
    settings = settings.model_copy(update={"review_web_port": free_port()})
    with review_service(settings, {}) as sign_in:
        url, rest = sign_in.split(" ", 1)
        user, password = re.fullmatch(r"\(user (\S+), password (\S+)\)", rest).groups()  # type: ignore[union-attr]
        listed = await get_when_up(f"{url}api/v1/items", auth=(user, password))
        assert listed.status_code == 200 and [i["id"] for i in listed.json()["items"]] == [held]
        assert (await get_when_up(f"{url}api/v1/items", auth=(user, "wrong-password"))).status_code == 401
    assert (settings.state_dir / f"reviewers-{settings.namespace}.yaml").exists()  # the run's, not the deployment's


async def test_ten_thousand_items_load_and_page_fast(settings: Settings, catalogue: Catalogue) -> None:
    agent = load_agents(settings.agents_dir, catalogue, only=["support_triage"])[0]
    template = review_record(catalogue, settings, agent, created_at_ms=0)
    now_ms = int(time.time() * 1000)
    items = []
    for n in range(10_000):  # the worker's record, re-keyed: the same bytes a real queue holds
        item = replace(decode_item(catalogue, template.value), event_id=f"bulk-{n:05d}", created_at_ms=now_ms - n * 10)
        items.append(item)
    records = [
        replace(template, key=i.item_id.encode(), value=_encode_item(catalogue, template.value, i)) for i in items
    ]
    async with RecordProducer(client_config(settings)) as producer:
        await producer.send_all(records)
    process = build_process(settings)
    started = time.monotonic()
    async with running(settings, process) as served:
        loaded_s = time.monotonic() - started
        paging = time.perf_counter()
        pages = [process.service.pending(agents=None, offset=n * 50, limit=50) for n in range(200)]
        paged_s = time.perf_counter() - paging
        assert pages[0].total == 10_000 and pages[0].items[0].item_id == "bulk-09999"
        assert pages[-1].items[-1].item_id == "bulk-00000"
        samples = await scrape_metrics(served.port)
        assert samples[("keel_review_queue_depth", frozenset({("agent", "support_triage")}))] == 10_000
    print(f"10,000 review items: loaded in {loaded_s:.2f} s, 200 pages in {paged_s * 1000:.0f} ms")
    assert loaded_s < 30 and paged_s < 1


def _encode_item(catalogue: Catalogue, template: bytes, item: Any) -> bytes:
    value = wire.decode(catalogue, template)
    value.update(event_id=item.item_id, created_at=item.created_at_ms)
    return wire.encode(catalogue.by_id(wire.read_header(template)), value)  # type: ignore[arg-type]


async def test_an_item_waiting_past_its_sla_fires_escalates_and_resolves_when_decided(
    settings: Settings, catalogue: Catalogue
) -> None:
    agent = load_agents(settings.agents_dir, catalogue, only=["support_triage"])[0]
    assert agent.definition.handoff.review_sla_s == 1800 and agent.definition.handoff.escalate_after_s == 7200
    three_hours_ago = int(time.time() * 1000) - 3 * 3_600_000
    record = review_record(catalogue, settings, agent, created_at_ms=three_hours_ago)
    async with RecordProducer(client_config(settings)) as producer:
        await producer.send_all([record])
    settings = settings.model_copy(update={"review_sla_check_s": 0.2})
    keys = ["review_sla:agent=support_triage", "review_sla:agent=support_triage|escalated"]

    async def sla_alerts(count: int) -> dict[str, list[str]]:
        async def read() -> list[Alert]:
            return [a for a in await read_alerts(settings, catalogue) if a.dedup_key in keys]

        alerts = await polled(read, lambda alerts: len(alerts) >= count, wait_s=30)
        return {key: [a.status for a in alerts if a.dedup_key == key] for key in keys}

    process = build_process(settings)
    async with running(settings, process):
        assert await sla_alerts(2) == {keys[0]: ["firing"], keys[1]: ["firing"]}
        item_id = (record.key or b"").decode()
        await process.service.decide(DecisionDraft(item_id, "approve", reviewer="ada"))
        assert await sla_alerts(4) == {keys[0]: ["firing", "resolved"], keys[1]: ["firing", "resolved"]}
    async with running(settings, build_process(settings)):  # a restart: nothing fires again
        await asyncio.sleep(1)
        assert await sla_alerts(4) == {keys[0]: ["firing", "resolved"], keys[1]: ["firing", "resolved"]}
    report = await review_stats(settings)
    row = next(line for line in report.splitlines() if line.startswith("support_triage"))
    assert agent.config_version in row and " 1       1       0   100%" in row, report  # approved unchanged
