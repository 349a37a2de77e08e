"""Alert sinks over HTTP: a Slack incoming webhook, and a generic webhook in the PagerDuty Events v2 shape.

Both post one JSON document per alert and turn the answer into a ``DeliveryResult``
(streams/alerts/delivery.py): 2xx delivered; no answer, a timeout, 408, 429 or 5xx try again later
(with the ``Retry-After`` the receiver asked for); any other 4xx is rejected. URLs are never logged:
a Slack webhook URL is itself a credential.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from connectors.http_headers import parse_retry_after
from streams.core.alert import FIRING, Alert
from streams.core.ports.alert_sink import Delivered, DeliveryResult, Rejected, RetryLater

_RETRY_STATUSES = frozenset({408, 425, 429})
_SLACK_ICON = {"firing": ":rotating_light:", "resolved": ":white_check_mark:"}


class HttpAlertSink:
    def __init__(
        self,
        name: str,
        url: str,
        body: Callable[[Alert], dict[str, Any]],
        *,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._url = url
        self._body = body
        self._client = httpx.AsyncClient(timeout=timeout_s, transport=transport, follow_redirects=False)

    async def deliver(self, alert: Alert) -> DeliveryResult:
        content = orjson.dumps(self._body(alert))
        try:
            response = await self._client.post(self._url, content=content, headers={"Content-Type": "application/json"})
        except httpx.TimeoutException:
            return RetryLater("no answer in time")
        except httpx.TransportError as exc:  # its message may name the URL: only the kind is kept
            return RetryLater(f"unreachable ({type(exc).__name__})")
        return classify(response.status_code, response.headers, response.text)

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"HttpAlertSink({self.name!r})"


def classify(status: int, headers: Mapping[str, str], text: str, *, now: datetime | None = None) -> DeliveryResult:
    if 200 <= status < 300:
        return Delivered()
    reason = f"HTTP {status}: {text.strip()[:300]}"
    if status in _RETRY_STATUSES or status >= 500:
        return RetryLater(reason, parse_retry_after(headers, now=now))
    return Rejected(reason)


def slack_message(alert: Alert) -> dict[str, Any]:
    """Slack's incoming-webhook payload: ``text`` (notifications, fallback) and Block Kit ``blocks``.

    Every value interpolated into mrkdwn is escaped (``slack_escaped``): event ids, tenants, agent and
    rule names come from events and configuration, and an unescaped ``<!channel>`` or ``<url|text>`` in
    one would notify a whole channel or disguise a link. The header is plain text, which Slack never parses.
    """
    state = "FIRING" if alert.status == FIRING else "RESOLVED"
    title = f"{_SLACK_ICON[alert.status]} {state} [{alert.severity}] {alert.rule}: {alert.dimension} {alert.scope}"
    facts = [
        ("Observed", _shown(alert.observed, alert.unit)),
        ("Threshold", _shown(alert.threshold, alert.unit)),
        ("Window", alert.window),
        ("Since", _iso(alert.started_at_ms)),
    ]
    samples = ", ".join(f"`{slack_escaped(event_id)}`" for event_id in alert.sample_event_ids) or "-"
    runbook = slack_escaped(alert.runbook_url).replace("|", "%7C")  # a | would end the link's address
    return {
        "text": f"{slack_escaped(title)}: {slack_escaped(alert.summary)}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _cut(slack_escaped(alert.summary), 2900)}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{slack_escaped(v)}"} for k, v in facts],
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": _cut(f"Sample events: {samples}", 2900)},
                    {"type": "mrkdwn", "text": f"<{runbook}|Runbook> · `{slack_escaped(alert.dedup_key)}`"},
                ],
            },
        ],
    }


def slack_escaped(text: str) -> str:
    """``text`` with Slack's three control characters escaped (``&`` first, so nothing is escaped twice)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, never ending inside an entity (a cut ``&am`` would show as text)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    amp = cut.rfind("&", max(0, limit - 5))
    return cut[:amp] if amp != -1 and ";" not in cut[amp:] else cut


def pagerduty_event(alert: Alert, *, routing_key: str | None) -> dict[str, Any]:
    """A PagerDuty Events API v2 event: trigger on firing, resolve on resolved, one ``dedup_key``."""
    event: dict[str, Any] = {
        "event_action": "trigger" if alert.status == FIRING else "resolve",
        "dedup_key": alert.dedup_key,
        "payload": {
            "summary": alert.summary[:1024],
            "source": f"keel/{alert.dimension}={alert.scope}",
            "severity": alert.severity,
            "timestamp": _iso(alert.at_ms),
            "component": alert.agent or alert.scope,
            "group": alert.dimension,
            "class": alert.rule,
            "custom_details": {
                "status": alert.status,
                "observed": alert.observed,
                "threshold": alert.threshold,
                "unit": alert.unit,
                "window": alert.window,
                "started_at": _iso(alert.started_at_ms),
                "sample_event_ids": list(alert.sample_event_ids),
                **alert.details,
            },
        },
        "links": [{"href": alert.runbook_url, "text": f"Runbook: {alert.rule}"}],
        "client": "Keel",
    }
    if routing_key is not None:
        event = {"routing_key": routing_key, **event}
    return event


def _iso(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _shown(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "ms":
        return f"{value / 1000:.1f} s"
    if unit == "usd_per_hour":
        return f"{value:.2f} USD/h"
    if unit == "usd":
        return f"{value:.2f} USD"
    return f"{value:g} {unit}"
