"""An agent's handoff policy as declared data: which outputs a human sees, and what happens after.

Rules are checked in order and the first that matches picks the route (``review``: held for a human;
``flag``: released and shown to a human too); no match leaves the policy's ``route`` (by default
``autonomous``), of which a ``qa_sample_rate`` share goes to review for measuring. The decision itself
is ``streams.pipeline.handoff.decide_handoff``; this module only validates the declaration, first on its own
(pydantic), then against the agent's Avro output schema (``schema_problems``), so that a rule on a
field the agent cannot produce stops the worker at startup instead of never matching.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

Route = Literal["autonomous", "review", "flag"]
Condition = Literal["validation_warnings", "fallback_model"]
QA_SAMPLE = "qa_sample"  # the rule name a sampled result is sent to review under
_RULE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_NUMERIC = {"int", "long", "float", "double"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class HandoffRule(_Strict):
    """One condition and the route it picks. Exactly one condition: a ``field`` with ``above``,
    ``below`` or ``in``; ``confidence_below``; or ``when``. A null field value never matches."""

    name: str = Field(description="Written to the audit record and the review item as the route's rule")
    route: Literal["review", "flag"]
    field: str | None = Field(default=None, description="A top-level field of the agent's output schema")
    above: float | None = None
    below: float | None = None
    in_: tuple[str | int | float | bool, ...] | None = Field(default=None, alias="in", min_length=1)
    confidence_below: float | None = Field(default=None, gt=0, le=1, description="Of the policy's confidence_field")
    when: Condition | None = Field(
        default=None, description="validation_warnings: the output needed fixing; fallback_model: not the first model"
    )

    @model_validator(mode="after")
    def _one_condition(self) -> Self:
        if not _RULE_NAME.match(self.name) or self.name == QA_SAMPLE:
            raise ValueError(f"name {self.name!r}: lower_snake_case, and not the reserved {QA_SAMPLE!r}")
        tests = [name for name in ("above", "below", "in_") if getattr(self, name) is not None]
        kinds = [self.field is not None, self.confidence_below is not None, self.when is not None]
        if sum(kinds) != 1:
            raise ValueError(f"rule {self.name!r}: give exactly one of field, confidence_below or when")
        if self.field is not None and len(tests) != 1:
            raise ValueError(f"rule {self.name!r}: a field rule needs exactly one of above, below or in")
        if self.field is None and tests:
            raise ValueError(f"rule {self.name!r}: above, below and in need a field")
        return self


class HandoffPolicy(_Strict):
    route: Route = Field(default="autonomous", description="The route of an output no rule matches")
    rules: tuple[HandoffRule, ...] = Field(default=(), description="Checked in order; the first match wins")
    confidence_field: str = Field(default="confidence", description="The output field confidence_below reads")
    qa_sample_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of would-be-autonomous outputs sent to review (rule qa_sample)"
    )
    review_sla_s: PositiveFloat | None = Field(default=None, description="An item waiting longer raises an alert")
    escalate_after_s: PositiveFloat | None = Field(default=None, description="An item waiting longer is escalated")
    on_reject: Literal["dead_letter", "rerun"] = Field(
        default="dead_letter", description="A rejected output: a dead letter, or a re-run without its model"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rule names must be unique: {', '.join(repeated)}")
        sla_s, escalate_s = self.review_sla_s, self.escalate_after_s
        if sla_s is not None and escalate_s is not None and escalate_s < sla_s:
            raise ValueError("escalate_after_s must not be shorter than review_sla_s")
        return self


def schema_problems(policy: HandoffPolicy, output_schema: dict[str, Any]) -> list[str]:
    """What in ``policy`` the agent's output schema (a record, JSON form) cannot satisfy."""
    fields = {f["name"]: f["type"] for f in output_schema.get("fields", [])}
    problems = []
    for index, rule in enumerate(policy.rules):
        if rule.when is not None:
            continue
        where = f"handoff.rules[{index}] ({rule.name})"
        name = rule.field if rule.field is not None else policy.confidence_field
        if name not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{where}: the output schema has no field {name!r} (it has: {known})")
            continue
        kind, symbols = _kind(fields[name])
        numeric_test = rule.above is not None or rule.below is not None or rule.confidence_below is not None
        if numeric_test and kind != "number":
            problems.append(f"{where}: field {name!r} is not a number (it is {kind}), so it cannot be compared")
        if rule.in_ is not None:
            problems += _in_problems(where, name, kind, symbols, rule.in_)
    return problems


def _in_problems(
    where: str, name: str, kind: str, symbols: tuple[str, ...], values: tuple[str | int | float | bool, ...]
) -> list[str]:
    if kind not in ("enum", "string", "number", "boolean"):
        return [f"{where}: field {name!r} is {kind}; `in` needs an enum, string, number or boolean field"]
    unknown = [v for v in values if kind == "enum" and v not in symbols]
    if unknown:
        return [f"{where}: {unknown} are not symbols of field {name!r} ({', '.join(symbols)})"]
    return []


def _kind(avro_type: Any) -> tuple[str, tuple[str, ...]]:
    """``number``, ``enum`` (with its symbols), ``string``, ``boolean`` or another Avro type name;
    a union with null counts as its other branch."""
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        return _kind(branches[0]) if len(branches) == 1 else ("union", ())
    if isinstance(avro_type, dict):
        if avro_type.get("logicalType") == "decimal":
            return "number", ()
        if avro_type.get("logicalType") is not None:
            return str(avro_type["logicalType"]), ()
        if avro_type.get("type") == "enum":
            return "enum", tuple(avro_type["symbols"])
        return _kind(avro_type["type"]) if isinstance(avro_type.get("type"), str) else ("record", ())
    return ("number", ()) if avro_type in _NUMERIC else (str(avro_type), ())
