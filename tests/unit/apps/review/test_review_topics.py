from prometheus_client.parser import text_string_to_metric_families

from streams.agent.definition import Agent
from streams.apps.review.metrics import ReviewMetrics
from streams.contracts.topics import topic_plan
from streams.core.settings import Settings


def test_review_topics_and_decisions_keep_their_records_until_deleted(agents: dict[str, Agent]) -> None:
    specs = topic_plan(list(agents.values()), Settings(namespace="t1"))
    plan = {spec.name: spec for spec in specs}
    assert len(plan) == len(specs)  # each topic once
    for name in ("t1.support_triage.review", "t1.invoice_extraction.review", "t1.keel.review.decisions"):
        assert plan[name].configs == {"cleanup.policy": "delete", "retention.ms": "-1"}, name
        assert plan[name].partitions == 4
    assert plan["t1.support_triage.results"].configs == {}


def test_metrics_show_depth_per_agent_decisions_and_waits() -> None:
    depths = {"a": 3}
    metrics = ReviewMetrics(["a", "b"], lambda: depths)
    metrics.decisions.labels("a", "c1", "edit").inc()
    metrics.time_to_decision.labels("a", "c1").observe(90)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert samples[("keel_review_queue_depth", (("agent", "a"),))] == 3
    assert samples[("keel_review_queue_depth", (("agent", "b"),))] == 0
    assert samples[("keel_review_decisions_total", (("action", "edit"), ("agent", "a"), ("config_version", "c1")))] == 1
    bucket = "keel_review_time_to_decision_seconds_bucket"
    assert samples[(bucket, (("agent", "a"), ("config_version", "c1"), ("le", "300.0")))] == 1
    assert samples[(bucket, (("agent", "a"), ("config_version", "c1"), ("le", "60.0")))] == 0
    depths["a"] = 0
    assert 'keel_review_queue_depth{agent="a"} 0.0' in metrics.render().decode()
