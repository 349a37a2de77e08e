"""The live view of `keel run`: one line per outcome record, whatever its kind."""

from review_samples import review_record

from streams.agent.definition import Agent
from streams.cli.demo import describe
from streams.cli.watch import Observed
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.settings import Settings


def _observed(catalogue: Catalogue, agent: Agent, **fields: object) -> Observed:
    record = review_record(catalogue, Settings(namespace="t1"), agent, **fields)  # type: ignore[arg-type]
    value = wire.decode(catalogue, record.value)
    return Observed("review", value["event_id"], value, 10, record.headers)


def test_a_review_item_says_why_it_waits_for_a_human(catalogue: Catalogue, agents: dict[str, Agent]) -> None:
    line = describe(_observed(catalogue, agents["support_triage"]))
    assert line == "REVIEW (review) support_triage T-9: big_invoice: priority is low"
    flagged = describe(_observed(catalogue, agents["support_triage"], route="flag"))
    assert flagged.startswith("REVIEW (flag) support_triage T-9: low_priority:")


def test_a_result_shows_its_first_output_fields(catalogue: Catalogue, agents: dict[str, Agent]) -> None:
    value = {"agent": "support_triage", "business_key": "T-1", "output": {"category": "billing", "priority": "low"}}
    assert describe(Observed("result", "e", value, 1)) == "RESULT support_triage T-1: category=billing, priority=low"


def test_an_events_tool_calls_are_shown_in_order_from_its_audit_record() -> None:
    from streams.cli.demo import tool_calls

    def attempt(purpose: str, provider: str, model: str, outcome: str = "ok") -> dict[str, object]:
        return {"purpose": purpose, "provider": provider, "model": model, "outcome": outcome, "latency_ms": 12.4}

    log = [attempt("initial", "sim", "m"), attempt("context", "crm", "lookup_customer"),
           attempt("tool", "crm", "create_ticket", "tool_unavailable"), attempt("step", "sim", "m")]  # fmt: skip
    assert tool_calls({"attempt_log": log}) == (
        "crm.lookup_customer ok (12 ms) -> crm.create_ticket tool_unavailable (12 ms)"
    )
    assert tool_calls({"attempt_log": log[:1]}) == ""
