"""`keel agent promote --require-eval`: only a version whose latest evaluation passed."""

from __future__ import annotations

import pytest

from streams.agent.evaluation import EvalFigures, Evaluation
from streams.cli.agent import require_eval
from streams.contracts.agent_configs import ConfigLog
from streams.core.errors import AgentConfigRefused

FIGURES = EvalFigures(3, 3, 0, 0, 1.0, 0.0, None, 0.001, 0, 10.0, 12.5)


def evaluation(passed: bool) -> Evaluation:
    reasons = () if passed else ("schema-valid rate 50.0% is below the minimum 90.0%",)
    return Evaluation("support_triage", "v2", "v1", "since 1h", "r1", passed, reasons, FIGURES, FIGURES, "ana", 0)


def test_promote_requires_a_passing_evaluation_of_that_version() -> None:
    log = ConfigLog()
    with pytest.raises(AgentConfigRefused, match="has not been evaluated: run `keel eval support_triage"):
        require_eval(log, "support_triage", "v2")
    log.apply(evaluation(False))
    with pytest.raises(AgentConfigRefused, match="failed its latest evaluation .*below the minimum 90.0%"):
        require_eval(log, "support_triage", "v2")
    log.apply(evaluation(True))
    assert "v2 passed its latest evaluation (since 1h, against v1" in require_eval(log, "support_triage", "v2")
    with pytest.raises(AgentConfigRefused):
        require_eval(log, "support_triage", "v1")
