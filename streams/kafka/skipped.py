"""Records a long-running reader passes over: counted every time, logged the first time per cause.

Every reader of Keel's topics (the review feed and applier, the budget owner and client, the alert
forwarder, evaluator and relay, the usage aggregation) treats a record it cannot read as data: it is
counted in ``keel_records_skipped_total{reader, topic, reason}`` and the reader goes on with the next
one. Anyone can write to a topic, so one bad producer can send thousands of such records: the log
says so once per reader, partition and reason (at error level, with the first record's position and
what was wrong), then only at debug level; the counter says how many followed. ``reason`` is a
``KeelError``'s stable code (streams/core/errors.py), never free text.
"""

from __future__ import annotations

import logging
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

from streams.core.errors import KeelError

log = logging.getLogger(__name__)


class Position(Protocol):
    """Where a record was read: an aiokafka ``ConsumerRecord`` (or a stand-in)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class SkippedRecords:
    """One per process, shared by its readers; ``register`` it on the registry its ``/metrics`` serves."""

    def __init__(self) -> None:
        self.counter = Counter(
            "keel_records_skipped",
            "Records a reader could not read and passed over, by reader, topic and reason",
            ["reader", "topic", "reason"],
            registry=None,
        )
        self._logged: set[tuple[str, str, int, str]] = set()

    def skip(self, reader: str, record: Position, reason: str | KeelError, detail: object = None) -> None:
        """Count ``record`` as passed over by ``reader``; ``reason``: a code, or the error that says it
        (then also the detail logged, unless ``detail`` is given)."""
        code = reason.reason if isinstance(reason, KeelError) else reason
        shown = detail if detail is not None else reason
        self.counter.labels(reader, record.topic, code).inc()
        key = (reader, record.topic, record.partition, code)
        where = f"{record.topic}/{record.partition}/{record.offset}"
        if key in self._logged:
            log.debug("%s: %s skipped (%s): %s", reader, where, code, shown)
            return
        self._logged.add(key)
        log.error(
            "%s: %s skipped (%s): %s; later records skipped for this reason in this partition are only counted "
            "(keel_records_skipped_total)",
            reader,
            where,
            code,
            shown,
        )

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self.counter)

    def count(self, reader: str, topic: str, reason: str) -> float:
        """How many records ``reader`` skipped on ``topic`` for ``reason`` (tests, reports)."""
        labels = {"reader": reader, "topic": topic, "reason": reason}
        samples = (sample for metric in self.counter.collect() for sample in metric.samples)
        return next((s.value for s in samples if s.name.endswith("_total") and s.labels == labels), 0.0)
