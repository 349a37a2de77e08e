"""The ACL plan: least privilege per principal, derived from the agents and settings, and its Strimzi form."""

from __future__ import annotations

import yaml

from streams.agent.definition import Agent
from streams.contracts.acl_formats import plan_lines, strimzi_users
from streams.contracts.acls import Grant, Principal, acl_plan, missing_grants, principal_name
from streams.contracts.topics import topic_plan
from streams.core.settings import Settings

SETTINGS = Settings(namespace="prod")


def by_name(agents: dict[str, Agent]) -> dict[str, Principal]:
    return {p.name: p for p in acl_plan(list(agents.values()), SETTINGS)}


def ops(principal: Principal, name: str) -> set[str]:
    return {g.operation for g in principal.grants if g.resource_name == name}


def test_one_principal_per_agent_worker_and_per_service(agents: dict[str, Agent]) -> None:
    assert set(by_name(agents)) == {
        "keel-prod-worker-support-triage", "keel-prod-worker-invoice-extraction", "keel-prod-aggregator",
        "keel-prod-relay", "keel-prod-review", "keel-prod-operator", "keel-prod-evaluator", "keel-prod-ingest",
    }  # fmt: skip
    assert principal_name(Settings(), "worker-Support_Triage") == "keel-worker-support-triage"


def test_ingest_writes_the_agents_input_topics_and_nothing_else(agents: dict[str, Agent]) -> None:
    ingest = by_name(agents)["keel-prod-ingest"]
    assert ops(ingest, "prod.support.tickets") == ops(ingest, "prod.finance.invoices") == {"WRITE"}
    assert {g.resource_name for g in ingest.grants} == {"prod.support.tickets", "prod.finance.invoices"}


def test_a_worker_reads_its_own_input_and_writes_its_own_outcomes_only(agents: dict[str, Agent]) -> None:
    worker = by_name(agents)["keel-prod-worker-support-triage"]
    assert ops(worker, "prod.support.tickets") == {"READ"}
    assert ops(worker, "prod.support_triage.results") == {"WRITE"}
    assert ops(worker, "prod.support_triage.retry.1") == {"READ", "WRITE"}
    assert ops(worker, "keel-prod-support_triage-outcomes") == {"READ", "WRITE"}
    assert ops(worker, "prod.keel.audit") == ops(worker, "prod.keel.usage") == {"WRITE"}
    assert {g.resource_name for g in worker.grants if g.resource_type == "GROUP"} == {
        "keel-prod-worker-support_triage",  # its own intake group (streams/contracts/topics.py intake_group)
        "keel-prod-budget-owners",
    }
    assert not ops(worker, "prod.finance.invoices") and not ops(worker, "prod.invoice_extraction.results")
    assert ops(worker, "prod.keel.review.decisions") == {"DESCRIBE"}  # its start-up topic check, never WRITE


def test_every_topic_a_process_checks_at_start_up_is_at_least_described(agents: dict[str, Agent]) -> None:
    worker = by_name(agents)["keel-prod-worker-invoice-extraction"]
    checked = {spec.name for spec in topic_plan([agents["invoice_extraction"]], SETTINGS)}
    assert checked <= {g.resource_name for g in worker.grants if g.resource_type == "TOPIC"}


def test_only_the_review_service_writes_decisions_and_only_the_aggregator_and_evaluator_read_audit(
    agents: dict[str, Agent],
) -> None:
    principals = by_name(agents)
    writers = {p.name for p in principals.values() if "WRITE" in ops(p, "prod.keel.review.decisions")}
    readers = {p.name for p in principals.values() if "READ" in ops(p, "prod.keel.audit")}
    assert writers == {"keel-prod-review"} and readers == {"keel-prod-aggregator", "keel-prod-evaluator"}
    review = principals["keel-prod-review"]
    assert ops(review, "prod.support_triage.review") == {"READ"}
    assert ops(review, "prod.support.tickets") == {"WRITE"}  # re-runs
    assert not any(
        g.operation == "CREATE" for p in principals.values() if p.name != "keel-prod-operator" for g in p.grants
    )


def test_the_evaluator_reads_its_inputs_and_writes_usage_and_configs_only(agents: dict[str, Agent]) -> None:
    evaluator = by_name(agents)["keel-prod-evaluator"]
    assert ops(evaluator, "prod.support_triage.review") == ops(evaluator, "prod.keel.review.decisions") == {"READ"}
    assert ops(evaluator, "prod.keel.usage") == {"WRITE"}
    assert ops(evaluator, "prod.keel.agent-configs") == {"READ", "WRITE"}
    written = {g.resource_name for g in evaluator.grants if g.operation == "WRITE"}
    assert written == {"prod.keel.usage", "prod.keel.agent-configs"}  # no results, review, dead letters, audit


def test_missing_grants_treats_read_and_write_as_describe() -> None:
    needed = [Grant("TOPIC", "t", "DESCRIBE"), Grant("TOPIC", "u", "READ"), Grant("GROUP", "g", "READ")]
    assert missing_grants(needed, [Grant("TOPIC", "t", "WRITE"), Grant("GROUP", "g", "READ")]) == [needed[1]]


def test_strimzi_users_carry_the_plan(agents: dict[str, Agent]) -> None:
    principals = acl_plan(list(agents.values()), SETTINGS)
    users = strimzi_users(principals, cluster="kafka-prod")
    assert len(users) == len(principals)
    document = yaml.safe_load_all(yaml.safe_dump_all(users))
    worker = next(u for u in document if u["metadata"]["name"] == "keel-prod-worker-support-triage")
    assert worker["apiVersion"] == "kafka.strimzi.io/v1beta2" and worker["kind"] == "KafkaUser"
    assert worker["metadata"]["labels"] == {"strimzi.io/cluster": "kafka-prod"}
    assert worker["spec"]["authentication"] == {"type": "scram-sha-512"}
    assert worker["spec"]["authorization"]["type"] == "simple"
    acls = {(a["resource"]["type"], a["resource"]["name"]): a for a in worker["spec"]["authorization"]["acls"]}
    retry = acls[("topic", "prod.support_triage.retry.1")]
    assert retry["operations"] == ["Read", "Write"] and retry["resource"]["patternType"] == "literal"
    assert acls[("group", "keel-prod-worker-support_triage")]["operations"] == ["Read"]
    lines = plan_lines(principals)
    assert "User:keel-prod-review  (keel review serve)" in lines
    assert "  topic  prod.keel.review.decisions: READ, WRITE" in lines
