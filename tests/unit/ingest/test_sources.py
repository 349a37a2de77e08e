"""Source files, and what a verified webhook becomes: the request envelope its agent reads."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from streams.core.settings import REPO_ROOT
from streams.ingest.sources import Source, SourceConfigError, WebhookRefused, load_sources


def test_the_shipped_sources_load() -> None:
    sources = load_sources(REPO_ROOT / "deploy" / "sources")
    assert {s.agent for s in sources.values()} == {"support_triage", "invoice_extraction"}


def test_a_webhook_becomes_its_agents_event_keyed_by_the_senders_id() -> None:
    helpdesk = load_sources(REPO_ROOT / "deploy" / "sources")["helpdesk"]
    body = orjson.dumps({"tenant": "northwind", "ticket": {"ticket_id": "T-9", "body": "Help"}})
    event = helpdesk.event(body, {"X-GitHub-Delivery": "d-42"}, now_ms=5)
    assert (event.event_id, event.business_key, event.tenant) == ("helpdesk:d-42", "T-9", "northwind")
    assert event.payload == {"ticket_id": "T-9", "body": "Help"} and event.source_system == "helpdesk"
    assert helpdesk.event(body, {"x-github-delivery": "d-42"}, now_ms=9).event_id == event.event_id


@pytest.mark.parametrize(
    ("body", "headers", "problem"),
    [
        (b"not json", {"X-GitHub-Delivery": "d"}, "not JSON"),
        (b"[1]", {"X-GitHub-Delivery": "d"}, "JSON object"),
        (b'{"tenant": "t", "ticket": {"ticket_id": "T"}}', {}, "event_id"),
        (b'{"tenant": "t", "ticket": "flat"}', {"X-GitHub-Delivery": "d"}, "payload"),
        (b'{"tenant": "t", "ticket": {}}', {"X-GitHub-Delivery": "d"}, "business_key"),
    ],
)
def test_a_body_that_cannot_be_an_event_is_refused_saying_why(
    body: bytes, headers: dict[str, str], problem: str
) -> None:
    helpdesk = load_sources(REPO_ROOT / "deploy" / "sources")["helpdesk"]
    with pytest.raises(WebhookRefused, match=problem):
        helpdesk.event(body, headers)


def test_a_bad_source_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    document = {"name": "x1", "agent": "a", "signature": {"scheme": "md5", "secret": {"env": "S"}}, "event_id": {}}
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(document))
    with pytest.raises(SourceConfigError) as refused:
        load_sources(tmp_path)
    assert str(tmp_path / "x.yaml") in str(refused.value) and "scheme" in str(refused.value)
    assert Source.model_fields["max_body_bytes"].default == 256 * 1024
