import pytest
from sample_alerts import agent_alert

from streams.alerts.delivery import Backoff, deliver, deliver_everywhere
from streams.core.alert import Alert
from streams.core.ports.alert_sink import Delivered, DeliveryResult, Rejected, RetryLater

ALERT = agent_alert(
    rule="dead_letters",
    severity="warning",
    scope="a",
    observed=6,
    threshold=5,
    unit="count",
    window="10m",
    summary="a: 6 dead letters in 10m (threshold 5)",
    runbook_url="docs/runbooks.md#runbook-dead-letters",
    at_ms=1,
)


class ScriptedSink:
    def __init__(self, name: str, *answers: DeliveryResult) -> None:
        self.name = name
        self.answers = list(answers)
        self.sent: list[Alert] = []

    async def deliver(self, alert: Alert) -> DeliveryResult:
        self.sent.append(alert)
        return self.answers.pop(0)

    async def aclose(self) -> None:
        return None


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_backoff_doubles_up_to_its_cap_and_honours_retry_after() -> None:
    backoff = Backoff(base_s=1, max_s=10)
    assert [backoff.delay_s(n, None) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff.delay_s(1, 42.0) == 42.0  # beyond the cap: the receiver asked for it
    assert backoff.delay_s(1, 99_999.0) == 3600.0 and backoff.delay_s(1, -3.0) == 0.0


async def test_a_sink_that_is_down_is_tried_until_it_takes_the_alert() -> None:
    sink = ScriptedSink("s", RetryLater("down"), RetryLater("429", 5.0), RetryLater("503"), Delivered())
    sleeps = Sleeps()
    assert await deliver(sink, ALERT, Backoff(1, 60), sleeps) == Delivered()
    assert sleeps.waits == [1, 5.0, 4] and len(sink.sent) == 4


async def test_a_rejected_alert_is_not_sent_again_and_the_other_sinks_still_get_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusing = ScriptedSink("refusing", Rejected("HTTP 400: invalid_payload"))
    flaky = ScriptedSink("flaky", RetryLater("down"), Delivered())
    results = await deliver_everywhere([refusing, flaky], ALERT, Backoff(1, 60), Sleeps())
    assert results == [Rejected("HTTP 400: invalid_payload"), Delivered()]
    assert len(refusing.sent) == 1 and len(flaky.sent) == 2
    [error] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "REFUSED by refusing" in error.getMessage() and "invalid_payload" in error.getMessage()
