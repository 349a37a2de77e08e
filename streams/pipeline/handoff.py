"""Handing an output to a human: the route of a validated output, and re-running a rejected one.

``decide_handoff`` picks ``autonomous``, ``review`` or ``flag`` from the agent's handoff policy
(streams/agent/handoff_policy.py): the first matching rule, else the policy's route, of which a QA share is
sampled for review. The sample is a hash of the event id, so a redelivered or retried event is
decided the same way. A reviewer's rejection with ``on_reject: rerun`` puts the event back on the
agent's input topic (``rerun_record``) as a new pass of the event, with the rejected model left out
of the chain, and those left out by earlier re-runs; its control headers are signed, and the worker
reads them with ``streams.contracts.control.read_control``.

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

from streams.agent.definition import Agent
from streams.agent.handoff_policy import QA_SAMPLE, HandoffPolicy, HandoffRule, Route
from streams.contracts.control import ControlKeys, parse_models, parse_pass
from streams.contracts.headers import H_RERUN_NUMBER, H_RERUN_OF, H_SKIP_MODEL
from streams.contracts.out_record import OutRecord
from streams.core.domain import Headers
from streams.core.errors import ControlHeaderMalformed
from streams.core.review_item import ReviewItem

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


def rerun_record(item: ReviewItem, *, topic: str, pass_number: int, keys: ControlKeys) -> OutRecord:
    """The record that runs ``item``'s event again: its original key and value, on the agent's input
    ``topic`` and in the partition it first arrived in (so the worker finds the event's entry in its
    outcome store), leaving out the model that produced the rejected output and those earlier re-runs
    left out. ``pass_number`` is ``rerun_pass`` of the review record's headers: runs of earlier passes
    are not repeated for it. Its control headers are signed with ``keys`` (streams/contracts/control.py)."""
    skip = item.skipped_models if item.output_model is None else (*item.skipped_models, item.output_model)
    headers: list[tuple[str, bytes | None]] = [
        (H_RERUN_OF, item.item_id.encode()),
        (H_RERUN_NUMBER, str(pass_number).encode()),
    ]
    if skip:
        headers.append((H_SKIP_MODEL, ",".join(dict.fromkeys(skip)).encode()))
    record = OutRecord(topic, item.input_key, item.input_value, tuple(headers), partition=item.input_partition)
    return keys.sign(record)


def rerun_pass(review_headers: Headers) -> int:
    """The pass a re-run of a review item is: the worker writes it on every review record (header
    ``keel.review.pass``); 1 for a record without a usable one."""
    number = parse_pass(dict(review_headers).get(H_RERUN_NUMBER))
    return 1 if number is None or number < 1 else number


def skipped_models(review_headers: Headers) -> tuple[str, ...]:
    """The models of a review record's ``keel.review.skip_model`` header: the worker writes there the
    models the item's pass left out, so that the next re-run leaves them out too. None for a header
    that is not UTF-8 (not one the worker wrote)."""
    try:
        return parse_models(dict(review_headers).get(H_SKIP_MODEL))
    except ControlHeaderMalformed:
        return ()


def without_models(agent: Agent, model_keys: tuple[str, ...]) -> Agent | None:
    """``agent`` with ``model_keys`` (provider/model) left out of its chain; None when nothing is left."""
    chain = [spec for spec in agent.definition.model_chain if spec.key not in model_keys]
    if not chain:
        return None
    return dataclasses.replace(agent, definition=agent.definition.model_copy(update={"model_chain": chain}))
