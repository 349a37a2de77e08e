"""Tools and context on the real broker: a worker whose agent looks its customer up in a compacted topic
that changes mid-run, and whose model (the simulator, told by ``[[sim:tool ...]]`` directives) calls a
real HTTP CRM on loopback: a read, then a write that opens a ticket. Every event ends in one outcome,
each ticket is opened once, the audit shows every step in order and the usage records count the calls."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from harness import Stack, assert_exactly_one_outcome_and_audit, run_through, worker_stack
from loopback import LoopbackServer, app_server

from connectors.crm.customers import Customers, account
from connectors.crm.server import CrmState, build_app
from streams.contracts.topics import TopicSpec
from streams.core.domain import RequestEvent
from streams.core.settings import REPO_ROOT
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import client_config

pytestmark = pytest.mark.integration
TOKEN = "it-crm-token-77"
CUSTOMERS = "crm.customers"
LOOKUP = '[[sim:tool lookup_customer {"customer_id": "C-1"}]]'
TOOLS = {
    "tools": {"allow": ["crm.lookup_customer", "crm.create_ticket"], "max_steps": 3},
    "context": {"profile": {"topic": CUSTOMERS, "key": "{{ payload.customer.id }}", "optional": True}},
}


@pytest.fixture(scope="module")
def crm() -> Iterator[tuple[LoopbackServer, CrmState]]:
    state = CrmState(
        Customers([account({"id": "C-1", "name": "Zoë", "email": "z@example.com", "plan": "pro"})]), token=TOKEN
    )
    with app_server(build_app(state)) as server:
        yield server, state


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, sim_url: str, tmp_path_factory: pytest.TempPathFactory, crm: tuple[LoopbackServer, CrmState]
) -> Iterator[Stack]:
    server, _ = crm
    connectors = tmp_path_factory.mktemp("connectors")
    definition = yaml.safe_load((REPO_ROOT / "deploy" / "connectors" / "crm.yaml").read_text())
    (connectors / "crm.yaml").write_text(yaml.safe_dump(definition | {"base_url": server.base_url}))
    triage = yaml.safe_load((REPO_ROOT / "deploy" / "agents" / "support_triage.yaml").read_text())
    prompt = triage["prompt"] | {"user": triage["prompt"]["user"] + "\nAccount note: {{ context.profile.note? }}\n"}
    with worker_stack(
        kafka_bootstrap,
        tmp_path_factory.mktemp("keel-state"),
        provider="sim",
        base_url=sim_url,
        start=False,
        env={"KEEL_CONNECTORS_DIR": str(connectors), "CRM_API_TOKEN": TOKEN, "KEEL_AGENTS": '["support_triage"]'},
        blocks={"support_triage": TOOLS | {"prompt": prompt}},
    ) as stack:
        topic = TopicSpec(stack.topic(CUSTOMERS), 1, 1, {"cleanup.policy": "compact"})
        asyncio.run(ensure_topics(client_config(stack.settings), [topic]))
        asyncio.run(_put_customer(stack, "v1"))
        with stack.running_worker():
            yield stack


async def _put_customer(stack: Stack, version: str) -> None:
    """The customer's profile, whose note tells the simulated model which ticket to open."""
    ticket = orjson.dumps({"customer_id": "C-1", "title": f"follow-up {version}"}).decode()
    note = f"[[sim:tool create_ticket {ticket}]]"
    producer = AIOKafkaProducer(**client_config(stack.settings).kwargs())
    await producer.start()
    try:
        await producer.send_and_wait(stack.topic(CUSTOMERS), orjson.dumps({"note": note}), key=b"C-1")
    finally:
        await producer.stop()


def _ticket_event(make_event: Any, n: int) -> RequestEvent:
    body = f"Please call me back about ticket {n}. {LOOKUP}"
    payload = {"ticket_id": f"T-{n}", "channel": "email", "customer": {"id": "C-1", "name": "Zoë"}, "body": body}
    return make_event(payload=payload, business_key=f"T-{n}")


async def test_a_read_then_a_write_per_event_each_done_once_and_audited_in_order(
    stack: Stack, crm: tuple[LoopbackServer, CrmState], make_event: Any
) -> None:
    _, state = crm
    before = len(state.tickets)
    events = [_ticket_event(make_event, n) for n in range(6)]
    ids, tally = await run_through(stack, events={"support.tickets": events})
    assert_exactly_one_outcome_and_audit(ids, tally)
    assert all(tally.outcome_kinds(i) == ["result"] for i in ids), tally.summary(ids)
    assert len(state.tickets) - before == len(events)  # one ticket per event, none twice
    assert {t["title"] for t in state.tickets[before:]} == {"follow-up v1"}
    for event_id in ids:
        [audit] = tally.by_kind["audit"][event_id]
        steps = [(a["purpose"], a["provider"], a["model"], a["outcome"]) for a in audit.value["attempt_log"]]
        assert [(p, m) for p, _, m, _ in steps] == [
            ("initial", "smollm2-135m-instruct"),
            ("tool", "lookup_customer"),
            ("step", "smollm2-135m-instruct"),
            ("tool", "create_ticket"),
            ("step", "smollm2-135m-instruct"),
        ], steps
        usage = [(u.value["kind"], u.value["provider"], u.value["model"]) for u in tally.by_kind["usage"][event_id]]
        assert sorted(usage).count(("tool", "crm", "create_ticket")) == 1 and len(usage) == 5


async def test_an_invalid_tool_call_is_asked_again_and_never_made(
    stack: Stack, crm: tuple[LoopbackServer, CrmState], make_event: Any
) -> None:
    _, state = crm
    before = len(state.tickets)
    invalid = '[[sim:tool create_ticket {"customer_id": "C-1", "priority": "whenever"}]]'  # no title, no such priority
    valid = '[[sim:tool create_ticket {"customer_id": "C-1", "title": "after a re-ask"}]]'
    # customer C-2 has no profile in the topic, so no note adds a directive of its own
    payload = {"ticket_id": "T-900", "customer": {"id": "C-2"}, "body": f"Please help. {invalid} {valid}"}
    ids, tally = await run_through(
        stack, events={"support.tickets": [make_event(payload=payload, business_key="T-900")]}
    )
    assert_exactly_one_outcome_and_audit(ids, tally)
    assert tally.outcome_kinds(ids[0]) == ["result"], tally.summary(ids)
    [audit] = tally.by_kind["audit"][ids[0]]
    steps = [(a["purpose"], a["model"], a["outcome"]) for a in audit.value["attempt_log"]]
    assert [t["title"] for t in state.tickets[before:]] == ["after a re-ask"], (steps, state.tickets[before:])
    assert steps[0] == ("initial", "smollm2-135m-instruct", "tool_call_invalid"), steps
    assert steps[1][0] == "reask" and [s for s in steps if s[0] == "tool"] == [("tool", "create_ticket", "ok")], steps


async def test_a_change_to_the_compacted_topic_reaches_the_next_lookups(
    stack: Stack, crm: tuple[LoopbackServer, CrmState], make_event: Any
) -> None:
    _, state = crm
    await _put_customer(stack, "v2")
    titles: list[str] = []
    for n in range(100, 130):  # the worker's table follows the topic within a poll or two
        ids, tally = await run_through(stack, events={"support.tickets": [_ticket_event(make_event, n)]})
        assert_exactly_one_outcome_and_audit(ids, tally)
        titles.append(state.tickets[-1]["title"])
        if titles[-1] == "follow-up v2":
            break
    assert titles[-1] == "follow-up v2", titles
    assert titles == sorted(titles)  # never back to v1 once v2 was seen
