"""What ``import streams`` offers an embedding program: a short, deliberate list."""

from __future__ import annotations

import subprocess
import sys

import streams
from streams.agent.definition import Agent
from streams.core import domain
from streams.core.errors import KeelError
from streams.core.settings import Settings
from streams.pipeline.process import process

SURFACE = {
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
}


def test_the_public_surface_is_pinned() -> None:
    assert set(streams.__all__) == SURFACE
    assert len(streams.__all__) == len(SURFACE)  # no name twice


def test_every_public_name_is_the_package_s_own() -> None:
    assert streams.process is process
    assert streams.Agent is Agent
    assert streams.Settings is Settings
    assert streams.KeelError is KeelError
    assert streams.Outcome == domain.Outcome
    for name in ("Result", "Review", "DeadLetter", "RetryLater", "Parked", "SourceRecord"):
        assert getattr(streams, name) is getattr(domain, name)


def test_star_import_gives_the_surface_and_no_kafka_client() -> None:
    code = (
        "import sys as _sys; from streams import *; "
        "print(sorted(k for k in dir() if not k.startswith('_')) == sorted(__import__('streams').__all__)); "
        "print(sorted(m for m in ('faust', 'aiokafka', 'aiohttp', 'httpx') if m in _sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert run.stdout.split("\n")[:2] == ["True", "[]"]
