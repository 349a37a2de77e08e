"""Outcome -> records: the bytes, keys and headers Keel writes for one event.

Pure: it builds records and sends nothing. Every outcome yields one outcome record (result, review
item or dead letter), one audit record, and one usage record per model attempt, all keyed by event id.
An event sent to a retry tier or parked is not decided yet: it yields the record it waits in and the
usage records of the attempts made so far, and its audit record comes with its final outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.agent.definition import Agent
from streams.contracts import park, retry
from streams.contracts.dead_letter import bounded, dead_letter_headers, dead_letter_value, record_size
from streams.contracts.headers import (
    H_AGENT,
    H_CONFIG_VERSION,
    H_EVENT_ID,
    H_OUTCOME,
    H_RERUN_NUMBER,
    H_SKIP_MODEL,
    H_TRACE_ID,
)
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import AUDIT, USAGE, AgentTopics, agent_topics
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.domain import (
    DeadLetter,
    Failure,
    Headers,
    Outcome,
    Parked,
    RequestEvent,
    Result,
    RetryLater,
    Review,
    Stage,
    Trace,
    outcome_name,
)
from streams.core.settings import Settings
from streams.cost.pricing import Cost, Pricing


@dataclass(frozen=True, slots=True)
class Emission:
    """Everything one event writes. ``outcome``, ``flagged`` and ``audit`` are what a redelivery
    re-emits; usage records are not re-emitted, because they count calls that were actually made."""

    outcome: OutRecord  # or, for an event that waits, the record it waits in (retry tier, parking)
    audit: OutRecord | None  # None while the event waits
    usage: tuple[OutRecord, ...]
    flagged: OutRecord | None = None  # a flagged result's review item, written besides the result

    @property
    def recorded(self) -> list[OutRecord]:
        return [record for record in (self.outcome, self.flagged, self.audit) if record is not None]

    def all(self) -> list[OutRecord]:
        return [*self.recorded, *self.usage]


@dataclass(frozen=True, slots=True)
class ReviewMark:
    """A reviewer's decision, stamped on the records it releases and on its audit record
    (streams/review/apply.py). Versions are the reviewed item's: the agent may have changed since."""

    reviewer: str
    action: str
    reason: str | None
    decision_id: str
    route: str
    rule: str | None
    human_override: bool
    agent_version: str
    config_version: str
    outcome: str | None = None  # the audit's outcome name when it is not the outcome's own (rerun)


TOOL_CALL_COST = Cost(0.0, None)  # Keel pays no model for a tool call; what the system charges is its own
MAX_RECORD_BYTES = 1024 * 1024 - 16 * 1024  # below the producer's max_request_size and the broker's default


def oversized(emission: Emission) -> Failure | None:
    """Why no topic would take one of the event's records, or its outcome store entry (which holds its
    outcome, flagged item and audit records): then the event ends as a dead letter that says so, which
    fits (streams/contracts/dead_letter.py). A large event's review item carries its payload, prompt and input."""
    entry = sum(record_size(r.key, r.value, r.headers) + 64 for r in emission.recorded)  # holds each of them
    largest = max([entry, *(record_size(r.key, r.value, r.headers) for r in emission.usage)])
    if largest <= MAX_RECORD_BYTES:
        return None
    message = f"the event's records would take {largest:,} bytes; a record holds at most {MAX_RECORD_BYTES:,}"
    return Failure(Stage.VALIDATE, "OutcomeTooLarge", "outcome_too_large", message)


class Emitter:
    """Turns outcomes into records for one worker's agents, with schemas resolved once."""

    def __init__(self, catalogue: Catalogue, settings: Settings, agents: list[Agent], *, pricing: Pricing) -> None:
        self._pricing = pricing
        self._dlq = catalogue.by_subject("keel.dlq-value")
        self._audit = catalogue.by_subject("keel.audit-value")
        self._usage = catalogue.by_subject("keel.usage-value")
        self._review = catalogue.by_subject("keel.review-value")
        self._audit_topic = settings.topic(AUDIT)
        self._usage_topic = settings.topic(USAGE)
        self._topics = {agent.name: agent_topics(agent, settings) for agent in agents}
        self._dead_letter_max_bytes = settings.dead_letter_max_bytes

    def records(self, outcome: Outcome, agent: Agent, *, now_ms: int) -> Emission:
        topics = self._topics[agent.name]
        trace = outcome.trace
        key = trace.event_id.encode()
        headers = _common_headers(trace, agent)
        usage = self.usage_records(self.usage_values(trace, agent), trace, agent)
        next_pass = trace.pass_number + 1  # a reviewer's re-run of this pass
        if isinstance(outcome, RetryLater | Parked):
            source = trace.source
            if isinstance(outcome, RetryLater):
                topic, waiting_headers = topics.retries[outcome.tier - 1], retry.tier_headers(outcome)
            else:
                topic, waiting_headers = topics.parked, park.park_headers(outcome)
            waiting = OutRecord(topic, source.key, source.value, waiting_headers, source.partition)
            return Emission(waiting, None, usage)
        flagged = None
        if isinstance(outcome, Result):
            main = self._result_record(_result_value(outcome, agent, now_ms), agent, key, headers)
            if outcome.flagged is not None:
                flagged = self._review_record(outcome.flagged, agent, key, headers, rerun_pass=next_pass, now_ms=now_ms)
        elif isinstance(outcome, Review):
            main = self._review_record(outcome, agent, key, headers, rerun_pass=next_pass, now_ms=now_ms)
        else:
            main = self._dead_letter_record(outcome, dead_letter_value(outcome, agent, now_ms), agent, key, headers)
        audit_value = _audit_value(outcome, agent, topics, now_ms)
        audit = self._audit_record(audit_value, outcome_name(outcome), key, headers)
        return Emission(main, audit, usage, flagged=flagged)

    def usage_values(self, trace: Trace, agent: Agent, *, purpose: str | None = None) -> list[dict[str, Any]]:
        """The usage values of the trace's new attempts, priced; ``purpose`` in place of each attempt's
        own (`keel eval` marks its calls ``eval``)."""
        values = _usage_values(trace, agent, self._pricing)
        return values if purpose is None else [{**value, "purpose": purpose} for value in values]

    def usage_records(
        self, values: list[dict[str, Any]], trace: Trace, agent: Agent, *, marks: Headers = ()
    ) -> tuple[OutRecord, ...]:
        """``values`` (``usage_values``) as records of ``keel.usage``, with ``marks`` added to the headers."""
        key, headers = trace.event_id.encode(), (*_common_headers(trace, agent), *marks)
        return tuple(  # timestamped with the attempt's start: the aggregation stream's event time
            OutRecord(self._usage_topic, key, wire.encode(self._usage, value), headers, timestamp_ms=value["at"])
            for value in values
        )

    def _review_record(
        self, review: Review, agent: Agent, key: bytes, headers: Headers, *, rerun_pass: int, now_ms: int
    ) -> OutRecord:
        """A review item, with the pass a reviewer's re-run of it would be and the models this pass left
        out, which that re-run leaves out too (streams/pipeline/handoff.py)."""
        value = wire.encode(self._review, _review_value(review, agent, now_ms))
        skipped = review.trace.skipped_models
        marks = [(H_OUTCOME, b"review"), (H_RERUN_NUMBER, str(rerun_pass).encode())]
        if skipped:
            marks.append((H_SKIP_MODEL, ",".join(skipped).encode()))
        return OutRecord(self._topics[agent.name].review, key, value, (*headers, *marks))

    def reviewed(
        self, outcome: Result | DeadLetter, agent: Agent, mark: ReviewMark, *, now_ms: int, release: bool
    ) -> list[OutRecord]:
        """A reviewed item's records: ``outcome`` (unless ``release`` is false: a flagged result was
        released already, or a re-run takes its place) and its audit record, marked with the decision."""
        topics, key = self._topics[agent.name], outcome.trace.event_id.encode()
        versions = {"agent_version": mark.agent_version, "config_version": mark.config_version}
        headers = _common_headers(outcome.trace, agent, config_version=mark.config_version)
        records: list[OutRecord] = []
        if release and isinstance(outcome, Result):
            value: dict[str, Any] = {**_result_value(outcome, agent, now_ms), **versions}
            value.update(reviewer=mark.reviewer, human_override=mark.human_override)
            records.append(self._result_record(value, agent, key, headers))
        elif release and isinstance(outcome, DeadLetter):
            value = {**dead_letter_value(outcome, agent, now_ms), "config_version": mark.config_version}
            records.append(self._dead_letter_record(outcome, value, agent, key, headers))
        name = mark.outcome or outcome_name(outcome)
        audit: dict[str, Any] = {**_audit_value(outcome, agent, topics, now_ms), **versions}
        audit.update(
            outcome=name,
            route=mark.route,
            route_rule=mark.rule,
            human_override=mark.human_override,
            reviewer=mark.reviewer,
            review_action=mark.action,
            review_reason=mark.reason,
            decision_id=mark.decision_id,
        )
        records.append(self._audit_record(audit, name, key, headers))
        return records

    def _result_record(self, value: dict[str, Any], agent: Agent, key: bytes, headers: Headers) -> OutRecord:
        encoded = wire.encode(agent.result_schema, value)
        return OutRecord(self._topics[agent.name].results, key, encoded, (*headers, (H_OUTCOME, b"result")))

    def _dead_letter_record(
        self, outcome: DeadLetter, value: dict[str, Any], agent: Agent, key: bytes, headers: Headers
    ) -> OutRecord:
        """Within ``dead_letter_max_bytes`` whatever the input carried (streams/contracts/dead_letter.py)."""
        marked = dead_letter_headers(outcome, (*headers, (H_OUTCOME, b"dead_letter")))
        bound = bounded(
            value, marked, key=key, max_bytes=self._dead_letter_max_bytes, encode=lambda v: wire.encode(self._dlq, v)
        )
        return OutRecord(self._topics[agent.name].dlq, key, bound.value, bound.headers)

    def _audit_record(self, value: dict[str, Any], outcome: str, key: bytes, headers: Headers) -> OutRecord:
        encoded = wire.encode(self._audit, value)
        return OutRecord(self._audit_topic, key, encoded, (*headers, (H_OUTCOME, outcome.encode())))


Final = Result | Review | DeadLetter


def _attempt_log(trace: Trace) -> list[dict[str, Any]]:
    return [
        {
            "number": a.number,
            "purpose": a.purpose,
            "provider": a.provider,
            "model": a.model,
            "model_version": a.model_version,
            "outcome": a.outcome,
            "latency_ms": a.latency_s * 1000,
        }
        for a in trace.attempts
    ]


def _about(event: RequestEvent, agent: Agent) -> dict[str, Any]:
    """The fields that say which event and which agent a result or review item is about."""
    return {
        "event_id": event.event_id,
        "agent": agent.name,
        "agent_version": agent.definition.version,
        "config_version": agent.config_version,
        "tenant": event.tenant,
        "business_key": event.business_key,
        "occurred_at": event.occurred_at_ms,
    }


def _review_value(review: Review, agent: Agent, now_ms: int) -> dict[str, Any]:
    event, source = review.trace.event, review.trace.source
    assert event is not None  # only decoded events reach the model, and so a reviewer
    return {
        **_about(event, agent),
        "created_at": now_ms,
        "route": review.route,
        "rule": review.rule,
        "reason": review.reason,
        "message": review.message,
        "request_payload": event.payload_json,
        "prompt": [{"role": role, "content": content} for role, content in review.prompt],
        "attempts": _attempt_log(review.trace),
        "output": review.output_json,
        "trace_id": event.trace_id,
        "input_topic": source.topic,
        "input_partition": source.partition,
        "input_offset": source.offset,
        "input_key": source.key,
        "input_value": source.value,
        "output_model": review.output_model,
        "output_model_version": review.output_model_version,
        "warnings": list(review.warnings),
    }


def _common_headers(trace: Trace, agent: Agent, *, config_version: str | None = None) -> Headers:
    """``config_version``: of a reviewed item, which may predate the agent's current one."""
    headers: list[tuple[str, bytes | None]] = [
        (H_EVENT_ID, trace.event_id.encode()),
        (H_AGENT, agent.name.encode()),
        (H_CONFIG_VERSION, (config_version or agent.config_version).encode()),
    ]
    if trace.event is not None and trace.event.trace_id:
        headers.append((H_TRACE_ID, trace.event.trace_id.encode()))
    return tuple(headers)


def _result_value(result: Result, agent: Agent, now_ms: int) -> dict[str, Any]:
    event = result.trace.event
    assert event is not None  # a result always has a decoded event
    return {
        **_about(event, agent),
        "produced_at": now_ms,
        "model_version": result.model_version,
        "route": result.route,
        "human_override": False,
        "reviewer": None,
        "trace_id": event.trace_id,
        "output": result.output,
    }


def _audit_value(outcome: Final, agent: Agent, topics: AgentTopics, now_ms: int) -> dict[str, Any]:
    trace, event = outcome.trace, outcome.trace.event
    last = trace.attempts[-1] if trace.attempts else None
    return {
        "event_id": trace.event_id,
        "trace_id": event.trace_id if event else None,
        "agent": agent.name,
        "agent_version": agent.definition.version,
        "config_version": agent.config_version,
        "tenant": event.tenant if event else None,
        "business_key": event.business_key if event else None,
        "input_topic": trace.source.topic,
        "input_partition": trace.source.partition,
        "input_offset": trace.source.offset,
        "input_payload": event.payload_json if event else None,
        "prompt_version": agent.templates.version,
        "prompt_hash": trace.prompt_hash,
        "provider": last.provider if last else None,
        "model": last.model if last else None,
        "model_version": last.model_version if last else None,
        "attempts": len(trace.attempts),
        "attempt_log": _attempt_log(trace),
        "output": outcome.output_json if isinstance(outcome, Result | Review) else None,
        "outcome": outcome_name(outcome),
        "route": outcome.route if isinstance(outcome, Result | Review) else None,
        "route_rule": outcome.rule if isinstance(outcome, Result | Review) else None,
        "error": _audit_error(outcome),
        "warnings": list(outcome.warnings) if isinstance(outcome, Result | Review) else [],
        "human_override": False,
        "reviewer": None,
        "received_at": trace.received_at_ms,
        "decode_ms": trace.decode_ms,
        "model_ms": trace.model_ms,
        "total_ms": trace.total_ms,
    }


def _audit_error(outcome: Final) -> dict[str, str] | None:
    if isinstance(outcome, Review):
        return {"stage": "review", "error_class": "Review", "reason": outcome.reason, "message": outcome.message}
    if not isinstance(outcome, DeadLetter):
        return None
    failure = outcome.failure
    return {
        "stage": failure.stage.value,
        "error_class": failure.error_class,
        "reason": failure.reason,
        "message": failure.message,
    }


def _usage_values(trace: Trace, agent: Agent, pricing: Pricing) -> list[dict[str, Any]]:
    tenant = trace.event.tenant if trace.event else ""
    values = []
    for attempt in trace.new_attempts:
        cost = pricing.attempt_cost(attempt) if attempt.kind == "model" else TOOL_CALL_COST
        values.append(
            {
                "event_id": trace.event_id,
                "agent": agent.name,
                "agent_version": agent.definition.version,
                "tenant": tenant,
                "provider": attempt.provider,
                "model": attempt.model,
                "model_version": attempt.model_version,
                "attempt": attempt.number,
                "purpose": attempt.purpose,
                "tokens_in": attempt.tokens_in,
                "tokens_out": attempt.tokens_out,
                "latency_ms": attempt.latency_s * 1000,
                "outcome": attempt.outcome,
                "at": attempt.started_at_ms,
                "cost_usd": cost.usd,
                "price_version": cost.price_version,
                "queued_ms": attempt.queued_s * 1000,
                "tokens_estimated": attempt.tokens_estimated,
                "kind": attempt.kind,
                "response_bytes": attempt.response_bytes,
            }
        )
    return values
