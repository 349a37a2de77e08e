"""`keel alerts list` (recent alerts, or the incidents still open) and `keel alerts relay` (the relay app,
streams/apps/relay/alert_relay.py)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from streams.core.alert import Alert
from streams.core.errors import ConfigError
from streams.core.settings import Settings
from streams.kafka.alert_log import open_incidents, read_alerts


def alerts_command(args: argparse.Namespace, settings: Settings) -> int:
    """`keel alerts [list|relay] [--open] [--limit N]`."""
    from streams.apps.registry.client_mode import load_schemas  # noqa: PLC0415

    catalogue, _ = load_schemas(settings)
    if args.action == "relay":
        from streams.apps.relay.alert_relay import run_relay  # noqa: PLC0415
        from streams.apps.wiring import build_alert_sinks  # noqa: PLC0415

        sinks = build_alert_sinks(settings)
        if not sinks:
            raise ConfigError("no alert sinks: set KEEL_ALERT_SLACK_WEBHOOK_URL and/or KEEL_ALERT_WEBHOOK_URL")
        asyncio.run(run_relay(settings, catalogue, sinks))
        return 0
    alerts = asyncio.run(read_alerts(settings, catalogue))
    chosen = open_incidents(alerts) if args.open else alerts
    for alert in chosen[-args.limit :]:
        print(describe(alert))
    print(f"{len(chosen)} {'open incident' if args.open else 'alert'}(s)")
    return 0


def describe(alert: Alert) -> str:
    at = datetime.fromtimestamp(alert.at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    values = f"{_value(alert.observed, alert.unit)} / {_value(alert.threshold, alert.unit)}"
    return f"{at}  {alert.status:<8} {alert.severity:<8} {alert.dedup_key:<48} {values:<24} {alert.summary}"


def _value(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value:.0%}"
    if unit == "ms":
        return f"{value / 1000:.1f}s"
    if unit in ("usd", "usd_per_hour"):
        return f"{value:.2f}{'/h' if unit == 'usd_per_hour' else ''} USD"
    return f"{value:g}"
