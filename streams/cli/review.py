"""`keel review stats`: the review topics read to their end and measured (the table: streams/cli/review_report.py).

`keel review serve` is the review app itself (streams/apps/review/shell.py); `keel review user` is
streams/cli/review_users.py.
"""

from __future__ import annotations

from streams.agent.definition import Agent
from streams.apps.review.shell import build_process
from streams.cli.review_report import review_stats_report
from streams.core.ports.clock import SystemClock
from streams.core.settings import Settings
from streams.review.suggest import ThresholdRule


async def review_stats(settings: Settings) -> str:
    """`keel review stats`: the review topics read to their end, measured."""
    process = build_process(settings)
    await process.service.start()
    try:
        queue = process.service.queue
        return review_stats_report(
            queue.items(),
            queue.decisions(),
            now_ms=SystemClock().now_ms(),
            threshold_rules={agent.name: threshold_rules(agent) for agent in process.agents},
            config_versions={agent.name: agent.config_version for agent in process.agents},
        )
    finally:
        await process.service.stop()


def threshold_rules(agent: Agent) -> list[ThresholdRule]:
    """The agent's "field above X goes to review" rules: the ones a suggestion can move."""
    return [
        ThresholdRule(rule.name, rule.field, rule.above)
        for rule in agent.definition.handoff.rules
        if rule.route == "review" and rule.field is not None and rule.above is not None
    ]
