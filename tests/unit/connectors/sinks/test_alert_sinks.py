from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sample_alerts import agent_alert

from connectors.http_headers import parse_retry_after
from connectors.sinks.alert_sinks import classify, pagerduty_event, slack_message
from streams.core.ports.alert_sink import Delivered, Rejected, RetryLater

ALERT = agent_alert(
    rule="error_rate",
    severity="error",
    scope="support_triage",
    observed=0.42,
    threshold=0.25,
    unit="ratio",
    window="5m",
    summary="support_triage: 42% of events ended as dead letters in 5m (21 of 50; threshold 25%)",
    runbook_url="https://docs.example.com/keel#runbook-error-rate",
    at_ms=1_800_000_000_000,
    agent="support_triage",
    sample_event_ids=("e-1", "e-2"),
    details={"note": "x"},
)
RESOLVED = replace(ALERT, status="resolved", summary="Resolved: ...")


def test_slack_message_has_fallback_text_and_blocks() -> None:
    message = slack_message(ALERT)
    assert message["text"].startswith(
        ":rotating_light: FIRING [error] error_rate: agent support_triage: support_triage: 42%"
    )
    header, summary, facts, context = message["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text" and len(header["text"]["text"]) <= 150
    assert summary["text"] == {"type": "mrkdwn", "text": ALERT.summary}
    assert [f["text"] for f in facts["fields"]][:3] == ["*Observed*\n42.0%", "*Threshold*\n25.0%", "*Window*\n5m"]
    texts = [element["text"] for element in context["elements"]]
    assert texts[0] == "Sample events: `e-1`, `e-2`"
    assert "<https://docs.example.com/keel#runbook-error-rate|Runbook>" in texts[1]
    assert slack_message(RESOLVED)["text"].startswith(":white_check_mark: RESOLVED [error] error_rate")


def test_pagerduty_events_v2_trigger_and_resolve_share_the_dedup_key() -> None:
    trigger = pagerduty_event(ALERT, routing_key="R" * 32)
    assert trigger["routing_key"] == "R" * 32 and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == ALERT.dedup_key
    payload = trigger["payload"]
    assert payload["summary"] == ALERT.summary and payload["severity"] == "error"
    assert payload["source"] == "keel/agent=support_triage" and payload["timestamp"] == "2027-01-15T08:00:00.000+00:00"
    assert payload["custom_details"]["sample_event_ids"] == ["e-1", "e-2"] and payload["custom_details"]["note"] == "x"
    assert trigger["links"] == [{"href": ALERT.runbook_url, "text": "Runbook: error_rate"}]
    resolve = pagerduty_event(RESOLVED, routing_key=None)
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == ALERT.dedup_key
    assert "routing_key" not in resolve


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (200, None, Delivered()),
        (202, None, Delivered()),
        (429, "7", RetryLater("HTTP 429: slow down", 7.0)),
        (503, None, RetryLater("HTTP 503: slow down", None)),
        (500, "Fri, 15 Jan 2027 08:00:30 GMT", RetryLater("HTTP 500: slow down", 30.0)),
        (400, None, Rejected("HTTP 400: slow down")),
        (404, "5", Rejected("HTTP 404: slow down")),
    ],
)
def test_answers_are_delivered_retried_or_rejected(status: int, retry_after: str | None, expected: object) -> None:
    now = datetime(2027, 1, 15, 8, 0, 0, tzinfo=UTC)
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    assert classify(status, headers, " slow down\n", now=now) == expected


def test_retry_after_that_cannot_be_read_is_ignored() -> None:
    assert parse_retry_after({"Retry-After": "soon"}) is None and parse_retry_after({"Retry-After": ""}) is None
    assert parse_retry_after({}) is None
    # a date without a zone (-0000) reads as UTC: the sink's own parser raised on it, outside its try
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"}) == 0.0


def test_slack_message_escapes_untrusted_text_so_it_cannot_mention_or_link() -> None:
    hostile = replace(
        ALERT,
        rule="rule<&>",
        dimension="tenant",
        scope="<!channel> & co",
        summary="tenant <!channel> & co: <https://evil.example|click here>",
        window="5m>",
        sample_event_ids=("<@U123>", "e&2"),
        dedup_key="error_rate:tenant=<!here>",
        runbook_url="https://docs.example.com/keel?a=1&b=2|x#runbook-error-rate",
    )
    message = slack_message(hostile)
    _header, summary, facts, context = message["blocks"]
    mrkdwn = [message["text"], summary["text"]["text"]]
    mrkdwn += [f["text"] for f in facts["fields"]] + [e["text"] for e in context["elements"]]
    runbook_link = "<https://docs.example.com/keel?a=1&amp;b=2%7Cx#runbook-error-rate|Runbook>"
    assert context["elements"][1]["text"] == f"{runbook_link} · `error_rate:tenant=&lt;!here&gt;`"
    for text in mrkdwn:
        bare = text.replace(runbook_link, "")
        assert "<" not in bare and ">" not in bare, text
        assert "&" not in bare.replace("&amp;", "").replace("&lt;", "").replace("&gt;", ""), text
    assert summary["text"]["text"] == "tenant &lt;!channel&gt; &amp; co: &lt;https://evil.example|click here&gt;"
    assert context["elements"][0]["text"] == "Sample events: `&lt;@U123&gt;`, `e&amp;2`"
    assert "rule&lt;&amp;&gt;: tenant &lt;!channel&gt; &amp; co" in message["text"]
    assert "*Window*\n5m&gt;" in [f["text"] for f in facts["fields"]]


def test_slack_text_is_cut_after_escaping_and_never_inside_an_entity() -> None:
    message = slack_message(replace(ALERT, summary="&" * 5000))
    text = message["blocks"][1]["text"]["text"]
    assert len(text) <= 2900 and text == "&amp;" * (len(text) // 5)
