"""The in-stream alert rules as declared data: a YAML file, validated by pydantic, loaded once.

``deploy/alert_rules.yaml`` holds the defaults; ``KEEL_ALERT_RULES_FILE`` points at your own copy. Each
rule has a ``kind`` (what it measures), ``by`` (per agent, model or tenant), a ``threshold`` that fires
it when the observed value reaches it, and a ``window`` where it measures over time. What each kind
measures is streams/alerts/conditions.py; how incidents open and close is streams/alerts/engine.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from streams.alerts.records import RUNBOOK_ANCHORS
from streams.core.alert import Dimension, Severity
from streams.core.config_file import load_model
from streams.core.errors import ConfigError

MAX_LOOKBACK_S = 24 * 3600  # the observation topic keeps 25 hours (streams/contracts/topics.py)
# raised by budgets, the review service and the canary judge, not by this engine
RESERVED = frozenset({"budget", "review_sla", "canary_rollback"})
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class AlertRulesError(ConfigError):
    reason = "alert_rules_invalid"


def parse_duration(value: Any) -> Any:
    """``30s``, ``5m``, ``6h``, ``1d`` or a number of seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if not match:
            raise ValueError(f"{value!r} is not a duration such as 30s, 5m, 6h or 1d")
        return int(match[1]) * _UNIT_S[match[2]]
    return value


def format_duration(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


Seconds = Annotated[int, BeforeValidator(parse_duration), Field(gt=0)]
Ratio = Annotated[float, Field(gt=0, le=1)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str  # each concrete rule narrows it to its Literal
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$", description="Names the rule in alerts and dedup keys")
    by: Dimension = "agent"
    severity: Severity = "warning"
    clear_after_s: Seconds | None = Field(default=None, description="Quiet this long before resolving")
    runbook: str | None = Field(
        default=None, description="A docs/runbooks.md anchor or a full URL; default: the kind's"
    )

    @property
    def window_s(self) -> int:
        return 0

    @property
    def lookback_s(self) -> int:
        """How far back the rule needs observations."""
        return self.window_s

    @property
    def runbook_anchor(self) -> str:
        return self.runbook or RUNBOOK_ANCHORS[self.kind]


class _Windowed(_Rule):
    window: Seconds

    @property
    def window_s(self) -> int:
        return self.window


class ConsecutiveFailures(_Rule):
    """Events in a row that ended as dead letters."""

    kind: Literal["consecutive_failures"]
    threshold: int = Field(ge=1)


class ErrorRate(_Windowed):
    """Share of events that ended as dead letters."""

    kind: Literal["error_rate"]
    threshold: Ratio
    min_events: int = Field(default=10, ge=1)


class ValidationFailureRate(_Windowed):
    """Share of model calls whose answer failed parsing or the output schema."""

    kind: Literal["validation_failure_rate"]
    threshold: Ratio
    min_events: int = Field(default=20, ge=1, description="Model calls in the window")


class Latency(_Windowed):
    """A quantile of the time from arrival to result, in ms."""

    kind: Literal["latency"]
    quantile: float = Field(default=0.95, gt=0, lt=1)
    threshold: float = Field(gt=0, description="ms")
    min_events: int = Field(default=10, ge=1)


class CostSpike(_Windowed):
    """Spend per hour in the window against ``threshold`` times the rate of the ``baseline`` before it."""

    kind: Literal["cost_spike"]
    baseline: Seconds
    threshold: float = Field(gt=0, description="Times the baseline rate")
    min_usd_per_hour: float = Field(default=1.0, ge=0, description="Below this a spike is not worth waking anyone")

    @property
    def lookback_s(self) -> int:
        return self.window + self.baseline


class DeadLetters(_Windowed):
    kind: Literal["dead_letters"]
    threshold: int = Field(ge=1)


class CircuitOpen(_Windowed):
    """Events that ended because every model's circuit was open (reason ``circuit_open``)."""

    kind: Literal["circuit_open"]
    threshold: int = Field(default=1, ge=1)


class ModelVersionChangedRule(_Windowed):
    """Events whose output came from a model reporting another version than the agent pins
    (``model_chain[].version``): a silent upgrade or deprecation by the provider."""

    kind: Literal["model_version_changed"]
    threshold: int = Field(default=1, ge=1)


class UnpricedModel(_Windowed):
    """Model calls whose model has no price (their usage records carry no cost)."""

    kind: Literal["unpriced_model"]
    by: Dimension = "model"
    threshold: int = Field(default=1, ge=1)


Rule = Annotated[
    ConsecutiveFailures
    | ErrorRate
    | ValidationFailureRate
    | Latency
    | CostSpike
    | DeadLetters
    | CircuitOpen
    | ModelVersionChangedRule
    | UnpricedModel,
    Field(discriminator="kind"),
]


class AlertRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    resolution_s: Seconds = Field(default=10, description="Windows are counted in buckets this long")
    clear_after_s: Seconds = Field(default=300, description="Default quiet period before an incident resolves")
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> AlertRules:
        names = [rule.name for rule in self.rules]
        for rule in self.rules:
            if names.count(rule.name) > 1:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            if rule.name in RESERVED:
                raise ValueError(f"rule name {rule.name!r} is reserved (raised by budgets or review SLAs)")
            if rule.window_s % self.resolution_s:
                raise ValueError(f"{rule.name}: window must be a multiple of resolution_s ({self.resolution_s} s)")
            if rule.lookback_s > MAX_LOOKBACK_S:
                raise ValueError(f"{rule.name}: looks back {rule.lookback_s} s, more than {MAX_LOOKBACK_S} s")
        return self

    @property
    def lookback_s(self) -> int:
        """How far back the evaluator reads observations when it takes over partitions."""
        return max((rule.lookback_s for rule in self.rules), default=0) + self.resolution_s

    def clear_after_ms(self, rule: _Rule) -> int:
        return 1000 * (rule.clear_after_s or self.clear_after_s)


def load_rules(path: Path) -> AlertRules:
    return load_model(path, AlertRules, AlertRulesError, what="the alert rules")
