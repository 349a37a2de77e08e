"""An evaluation of an agent version as data: the figures `keel eval` measured for a candidate and its
baseline, and whether the candidate passed the agent's thresholds (``EvaluationPolicy``).

The figures are computed in streams/eval/; the latest evaluation of each version is kept on
``keel.agent-configs`` (streams/contracts/agent_configs.py), where `keel agent promote --require-eval`
looks for a passing one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EvalFigures:
    """One version's figures over the events of an evaluation run."""

    events: int
    valid: int  # results and review items with an output
    invalid: int  # dead letters for output that did not parse or validate
    errors: int  # every other end: provider errors, transient failures, review without output
    schema_valid_rate: float | None  # valid / (valid + invalid); None: no event ended either way
    reasks_per_event: float
    agreement: float | None  # share of top-level fields equal to the expected ones; None: nothing expected
    cost_usd: float
    unpriced_calls: int
    latency_mean_ms: float | None
    latency_p95_ms: float | None

    @property
    def cost_per_event_usd(self) -> float | None:
        return self.cost_usd / self.events if self.events else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.events if self.events else None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A candidate version measured against a baseline on one set of inputs."""

    agent: str
    version_id: str
    baseline: str
    inputs: str  # since <duration> | golden <file> | reviews
    run_id: str
    passed: bool
    reasons: tuple[str, ...]
    candidate: EvalFigures
    baseline_figures: EvalFigures
    author: str = ""
    at_ms: int = 0
    message: str = ""
