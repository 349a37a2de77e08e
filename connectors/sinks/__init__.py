"""Alert sinks (Slack, a PagerDuty-style webhook): implementations of
``streams.core.ports.alert_sink.AlertSink``.

May import: streams.core, httpx.
"""
