"""A decision -> the records it releases: what the applier (streams/apps/review/applier.py) writes.

Pure. Records are built by the emitter's own builders (``Emitter.reviewed``) from the item as the
pipeline's outcome would have been, so a reviewed result is the same record as an autonomous one plus the
reviewer's marks. ``now_ms`` is the decision's own time: applying one decision twice (a crash between
writing and committing) writes byte-identical records, which consumers fold by event id.

| route  | approve                | edit                              | reject                                       |
|--------|------------------------|-----------------------------------|----------------------------------------------|
| review | result (item's output) | result (edited, human_override)   | the agent's on_reject: dead letter or re-run |
| flag   | audit only (released)  | corrected result (human_override) | on_reject rerun: a re-run (*); else audit    |

(*) whose result follows the released one; with on_reject dead_letter the released result stands and the
rejection is on record (an event has one outcome).

Every decision writes one audit record with the reviewer, action, reason and decision id.
"""

from __future__ import annotations

from dataclasses import replace

import orjson

from streams.agent.definition import Agent
from streams.contracts.control import ControlKeys
from streams.contracts.emit import Emitter, ReviewMark
from streams.contracts.out_record import OutRecord
from streams.core.domain import Attempt, DeadLetter, Failure, RequestEvent, Result, SourceRecord, Stage, Trace
from streams.core.review_item import Decision, ReviewItem
from streams.pipeline.handoff import rerun_record
from streams.pipeline.parse import validate_output

REJECTED = "review_rejected"


def decision_records(
    item: ReviewItem,
    decision: Decision,
    agent: Agent,
    emitter: Emitter,
    *,
    input_topic: str,
    keys: ControlKeys,
) -> list[OutRecord]:
    """The records of the first decision on ``item``; a re-run's signed with ``keys``. Raises
    ``OutputError`` when an output no longer fits the agent's schema (the definition changed since the
    decision was checked)."""
    trace = item_trace(item, received_at_ms=decision.decided_at_ms)
    edited = decision.action == "edit"
    mark = ReviewMark(
        reviewer=decision.reviewer,
        action=decision.action,
        reason=decision.reason,
        decision_id=decision.decision_id,
        route=item.route,
        rule=item.rule,
        human_override=edited,
        agent_version=item.agent_version,
        config_version=item.config_version,
    )
    now_ms = decision.decided_at_ms
    if decision.action in ("approve", "edit"):
        output_json = decision.output_json if edited else item.output_json
        assert output_json is not None  # checked before the decision was written (streams/review/decide.py)
        result = _result(trace, item, agent, output_json)
        return emitter.reviewed(result, agent, mark, now_ms=now_ms, release=edited or item.route == "review")
    rerun = agent.definition.handoff.on_reject == "rerun"
    if item.route == "flag" and not rerun:  # the released result stands; the rejection is on record for the measures
        released = _result(trace, item, agent, item.output_json) if item.output_json else _rejected(trace, decision)
        return emitter.reviewed(released, agent, mark, now_ms=now_ms, release=False)
    dead = _rejected(trace, decision)
    if not rerun:
        return emitter.reviewed(dead, agent, mark, now_ms=now_ms, release=True)
    again = rerun_record(item, topic=input_topic, pass_number=item.rerun_pass, keys=keys)
    audit = emitter.reviewed(dead, agent, replace(mark, outcome="rerun"), now_ms=now_ms, release=False)
    return [again, *audit]


def item_trace(item: ReviewItem, *, received_at_ms: int) -> Trace:
    """The item's event as the pipeline saw it. Every attempt counts as earlier, so the emitter writes
    no usage records: those calls were counted when they were made."""
    source = SourceRecord(
        item.input_topic, item.input_partition, item.input_offset, None, item.input_key, item.input_value
    )
    event = RequestEvent(
        event_id=item.event_id,
        occurred_at_ms=item.occurred_at_ms,
        tenant=item.tenant,
        source_system="",  # not on the review item, and no record built here carries it
        business_key=item.business_key,
        payload=orjson.loads(item.request_payload),
        payload_json=item.request_payload,
        trace_id=item.trace_id,
    )
    attempts = tuple(
        Attempt(a.provider, a.model, a.number, 0, a.latency_ms / 1000, 0, 0, a.model_version, a.outcome, a.purpose)
        for a in item.attempts
    )
    return Trace(source, received_at_ms, event, None, attempts, earlier_attempts=len(attempts))


def _result(trace: Trace, item: ReviewItem, agent: Agent, output_json: str) -> Result:
    checked = validate_output(agent.output_schema.raw, orjson.loads(output_json))
    model_version = item.output_model_version or item.output_model or "unknown"
    return Result(trace, checked.value, output_json, model_version, route=item.route, warnings=item.warnings)


def _rejected(trace: Trace, decision: Decision) -> DeadLetter:
    message = f"rejected by reviewer {decision.reviewer}: {decision.reason or '(no reason given)'}"
    return DeadLetter(trace, Failure(Stage.REVIEW, "ReviewRejected", REJECTED, message))
