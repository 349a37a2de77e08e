"""Handing an output to a human: the route of a validated output, and re-running a rejected one.

``decide_handoff`` picks ``autonomous``, ``review`` or ``flag`` from the agent's handoff policy
(streams/handoff_policy.py): the first matching rule, else the policy's route, of which a QA share is
sampled for review. The sample is a hash of the event id, so a redelivered or retried event is
decided the same way. A reviewer's rejection with ``on_reject: rerun`` puts the event back on the
agent's input topic (``rerun_record``) as a new pass of the event, with the rejected model left out
of the chain, and those left out by earlier re-runs; the worker reads such a record with
``rerun_arrival`` and ``rerun_skips``.

Pure: plain values in, plain values out.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from streams.agents import Agent
from streams.domain import Headers
from streams.emit import OutRecord
from streams.handoff_policy import QA_SAMPLE, HandoffPolicy, HandoffRule, Route
from streams.retry import Arrival
from streams.review import H_RERUN_NUMBER, H_RERUN_OF, H_SKIP_MODEL, ReviewItem

REASON_RULE = "handoff_rule"  # a rule matched
REASON_QA = QA_SAMPLE  # sampled from the would-be-autonomous outputs
REASON_ROUTE = "handoff_route"  # no rule matched and the policy's own route is review or flag


@dataclass(frozen=True, slots=True)
class HandoffDecision:
    route: Route
    rule: str | None  # the rule that chose the route; None: the policy's route, no rule matched
    why: str = ""  # for the reviewer: what matched

    @property
    def reason(self) -> str:
        """The review item's reason code."""
        return REASON_QA if self.rule == QA_SAMPLE else REASON_ROUTE if self.rule is None else REASON_RULE


def decide_handoff(
    policy: HandoffPolicy,
    output: Mapping[str, Any],
    *,
    warnings: tuple[str, ...],
    used_fallback: bool,
    event_id: str,
) -> HandoffDecision:
    """``output`` is the validated, Avro-ready output; ``used_fallback``: it came from a model other
    than the first of the agent's chain."""
    for rule in policy.rules:
        why = _match(rule, policy, output, warnings=warnings, used_fallback=used_fallback)
        if why is not None:
            return HandoffDecision(rule.route, rule.name, why)
    if policy.route == "autonomous":
        if qa_sampled(event_id, policy.qa_sample_rate):
            return HandoffDecision("review", QA_SAMPLE, f"sampled for quality review (rate {policy.qa_sample_rate:g})")
        return HandoffDecision("autonomous", None)
    return HandoffDecision(policy.route, None, f"the agent's handoff route is {policy.route}")


def qa_sampled(event_id: str, rate: float) -> bool:
    """Whether ``event_id`` falls in the sampled ``rate`` share: the same answer every time it is asked."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(b"keel.qa_sample\x00" + event_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") < rate * 2**64


def _match(
    rule: HandoffRule,
    policy: HandoffPolicy,
    output: Mapping[str, Any],
    *,
    warnings: tuple[str, ...],
    used_fallback: bool,
) -> str | None:
    """Why ``rule`` matches, or None."""
    if rule.when == "validation_warnings":
        return "the output needed fixing: " + "; ".join(warnings) if warnings else None
    if rule.when == "fallback_model":
        return "the output came from a fallback model" if used_fallback else None
    name = rule.field if rule.field is not None else policy.confidence_field
    value = output.get(name)
    if value is None:
        return None
    if rule.in_ is not None:
        return f"{name} is {value!r}, one of {list(rule.in_)}" if value in rule.in_ else None
    number = _number(value)
    if rule.above is not None:
        return f"{name} {number} is above {rule.above:g}" if number > _threshold(rule.above) else None
    limit = rule.below if rule.below is not None else rule.confidence_below
    assert limit is not None  # the policy's validation: exactly one test per rule
    return f"{name} {number} is below {limit:g}" if number < _threshold(limit) else None


def _number(value: Any) -> Decimal:
    """Decimal outputs compared exactly with the declared thresholds (no float rounding)."""
    return value if isinstance(value, Decimal) else Decimal(str(value))


@functools.lru_cache(maxsize=256)
def _threshold(declared: float) -> Decimal:
    """A rule's threshold as ``_number`` reads it, converted once (rules run on every event)."""
    return _number(declared)


# --- re-running a rejected output ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rerun:
    rerun_of: str  # the rejected item's id
    skip_models: tuple[str, ...]  # provider/models to leave out of the chain
    pass_number: int


def rerun_record(item: ReviewItem, *, topic: str, pass_number: int) -> OutRecord:
    """The record that runs ``item``'s event again: its original key and value, on the agent's input
    ``topic`` and in the partition it first arrived in (so the worker finds the event's entry in its
    outcome store), leaving out the model that produced the rejected output and those earlier re-runs
    left out. ``pass_number`` is ``rerun_pass`` of the review record's headers: runs of earlier passes
    are not repeated for it."""
    skip = item.skipped_models if item.output_model is None else (*item.skipped_models, item.output_model)
    headers: list[tuple[str, bytes | None]] = [
        (H_RERUN_OF, item.item_id.encode()),
        (H_RERUN_NUMBER, str(pass_number).encode()),
    ]
    if skip:
        headers.append((H_SKIP_MODEL, ",".join(dict.fromkeys(skip)).encode()))
    return OutRecord(topic, item.input_key, item.input_value, tuple(headers), partition=item.input_partition)


def rerun_pass(review_headers: Headers) -> int:
    """The pass a re-run of a review item is: the worker writes it on every review record (header
    ``keel.review.pass``); 1 for a record without it."""
    number = _pass_of(dict(review_headers))
    return 1 if number is None else number


def rerun_request(headers: Headers) -> Rerun | None:
    """The re-run an input record asks for, or None (not a re-run, or no usable pass number: then it is
    handled as a delivery of the event's first pass, which re-emits what was recorded)."""
    found = dict(headers)
    of, pass_number = found.get(H_RERUN_OF), _pass_of(found)
    if of is None or pass_number is None or pass_number < 1:
        return None
    return Rerun(of.decode(), skipped_models(headers), pass_number)


def _pass_of(headers: Mapping[str, bytes | None]) -> int | None:
    """The ``keel.review.pass`` header's number; None when it is missing or not a number."""
    raw = headers.get(H_RERUN_NUMBER)
    return int(raw) if raw and raw.isdigit() else None


def rerun_arrival(arrived: Arrival) -> Arrival:
    """A record read from the input topic: as the pass it asks to be when it is a re-run."""
    rerun = rerun_request(arrived.source.headers)
    return arrived if rerun is None else dataclasses.replace(arrived, pass_number=rerun.pass_number)


def rerun_skips(headers: Headers) -> tuple[str, ...]:
    """The models an input record leaves out: none unless it is a re-run. The headers stay on the
    event's retry-tier and parked records."""
    rerun = rerun_request(headers)
    return rerun.skip_models if rerun is not None else ()


def skipped_models(headers: Headers) -> tuple[str, ...]:
    """The models of a ``keel.review.skip_model`` header: the worker copies it from a re-run onto the
    review record of the re-run's pass, so that the next re-run leaves them out too."""
    raw = dict(headers).get(H_SKIP_MODEL)
    return tuple(key for key in raw.decode().split(",") if key) if raw else ()


def without_models(agent: Agent, model_keys: tuple[str, ...]) -> Agent | None:
    """``agent`` with ``model_keys`` (provider/model) left out of its chain; None when nothing is left."""
    chain = [spec for spec in agent.definition.model_chain if spec.key not in model_keys]
    if not chain:
        return None
    return dataclasses.replace(agent, definition=agent.definition.model_copy(update={"model_chain": chain}))
