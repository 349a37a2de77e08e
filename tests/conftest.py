"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from agent_files import write_bare_agents

from streams.agent.definition import Agent, load_agents
from streams.core.catalogue import Catalogue, load_catalogue
from streams.core.domain import RequestEvent, SourceRecord
from streams.core.settings import REPO_ROOT
from streams.cost.pricing import Pricing, load_pricing
from streams.pipeline.decode import encode_request

SCHEMAS_DIR = REPO_ROOT / "schemas"
AGENTS_DIR = REPO_ROOT / "deploy" / "agents"


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue(SCHEMAS_DIR)


@pytest.fixture(scope="session")
def agents(catalogue: Catalogue, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Agent]:
    """The shipped agents without their ``tools`` and ``context`` blocks (a test that wants tools or
    lookups declares its own); `shipped_agents` are the files as they are."""
    bare = write_bare_agents(tmp_path_factory.mktemp("agents"))
    return {agent.name: agent for agent in load_agents(bare, catalogue)}


@pytest.fixture(scope="session")
def shipped_agents(catalogue: Catalogue) -> dict[str, Agent]:
    return {agent.name: agent for agent in load_agents(AGENTS_DIR, catalogue)}


@pytest.fixture(scope="session")
def pricing() -> Pricing:
    return load_pricing(REPO_ROOT / "deploy" / "pricing.yaml")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return REPO_ROOT / "deploy" / "samples"


TICKET = {
    "ticket_id": "T-1001",
    "channel": "email",
    "customer": {"id": "C-1", "name": "Zoë Example", "email": "zoe@example.com", "plan": "pro"},
    "subject": "Charged twice",
    "body": "I was charged twice for my subscription this month.",
    "language": "en",
    "created_at": "2026-11-01T10:00:00Z",
    "attachments": [],
}


@pytest.fixture
def make_event() -> Callable[..., RequestEvent]:
    def make(payload: dict[str, object] | None = None, **overrides: object) -> RequestEvent:
        body = TICKET if payload is None else payload
        fields: dict[str, object] = {
            "event_id": str(uuid.uuid4()),
            "occurred_at_ms": int(time.time() * 1000),
            "tenant": "acme-retail",
            "source_system": "zendesk",
            "business_key": str(body.get("ticket_id", "K-1")),
            "payload": body,
            "payload_json": orjson.dumps(body).decode(),
            "trace_id": None,
        }
        fields.update(overrides)
        return RequestEvent(**fields)  # type: ignore[arg-type]

    return make


@pytest.fixture
def make_source(catalogue: Catalogue, make_event: Callable[..., RequestEvent]) -> Callable[..., SourceRecord]:
    def make(value: bytes | None = None, *, event: RequestEvent | None = None, offset: int = 7) -> SourceRecord:
        if value is None:
            value = encode_request(catalogue, event or make_event())
        return SourceRecord("support.tickets", 2, offset, 1_700_000_000_000, b"T-1001", value, (("h", b"v"),))

    return make


@pytest.fixture
def request_bytes(catalogue: Catalogue, make_event: Callable[..., RequestEvent]) -> Callable[..., bytes]:
    """An encoded request event; any envelope field may be overridden, also with values Keel must refuse."""

    def make(**fields: object) -> bytes:
        return encode_request(catalogue, make_event(**fields))

    return make
