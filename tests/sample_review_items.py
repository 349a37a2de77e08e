"""Review items and decisions for the tests of the measured-handoff figures, suggestions and SLAs."""

from __future__ import annotations

import orjson
from review_samples import item_with

from streams.core.review_item import Action, Decision, ReviewItem, Route

T0_MS = 1_800_000_000_000


def review_item(
    item_id: str,
    *,
    agent: str = "invoice",
    config_version: str = "c1",
    created_at_ms: int = T0_MS,
    route: Route = "review",
    rule: str | None = "large_total",
    reason: str = "handoff_rule",
    output: dict[str, object] | None = None,
) -> ReviewItem:
    return item_with(
        event_id=item_id,
        agent=agent,
        config_version=config_version,
        tenant="t1",
        business_key=f"k-{item_id}",
        occurred_at_ms=created_at_ms - 1_000,
        created_at_ms=created_at_ms,
        route=route,
        rule=rule,
        reason=reason,
        message="",
        prompt=(("user", "hi"),),
        output_json=None if output is None else orjson.dumps(output).decode(),
        input_topic=f"{agent}.requests",
        output_model="sim/m",
    )


def decision(item: ReviewItem, action: Action, *, after_ms: int = 60_000, reviewer: str = "ann") -> Decision:
    """``item`` decided ``after_ms`` after it was created."""
    return Decision(
        decision_id=f"d-{item.item_id}-{action}-{after_ms}",
        item_id=item.item_id,
        agent=item.agent,
        config_version=item.config_version,
        route=item.route,
        action=action,
        reviewer=reviewer,
        decided_at_ms=item.created_at_ms + after_ms,
        reason="wrong" if action == "reject" else None,
        output_json='{"total": 1}' if action == "edit" else None,
    )
