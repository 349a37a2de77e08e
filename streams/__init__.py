"""Keel: run AI agents reliably in production on Kafka.

What an embedding program needs to decide events itself: ``process`` takes one ``SourceRecord`` for an
``Agent`` with its ``Deps`` and returns an ``Outcome`` (``Result``, ``Review``, ``DeadLetter``,
``RetryLater`` or ``Parked``); ``Settings`` reads the environment; every error Keel raises is a
``KeelError``. Everything else lives in the packages by concern (streams/core, agent, pipeline, ...).
"""

from streams.agent.definition import Agent
from streams.core.domain import DeadLetter, Outcome, Parked, Result, RetryLater, Review, SourceRecord
from streams.core.errors import KeelError
from streams.core.settings import Settings
from streams.pipeline.deps import Deps
from streams.pipeline.process import process

__all__ = [
    "Agent",
    "DeadLetter",
    "Deps",
    "KeelError",
    "Outcome",
    "Parked",
    "Result",
    "RetryLater",
    "Review",
    "Settings",
    "SourceRecord",
    "process",
]
