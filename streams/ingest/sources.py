"""Webhook sources as declared data: one YAML file per sending system in ``deploy/sources/``
(``KEEL_SOURCES_DIR``), and what a source's webhook becomes: a request envelope for its agent.

```yaml
name: helpdesk                  # POST /ingest/helpdesk
agent: support_triage           # its input topic is where the events go
signature: {scheme: github, secret: {env: HELPDESK_WEBHOOK_SECRET}}
event_id: {header: X-GitHub-Delivery}   # the sender's idempotency key: a resent webhook is one event
business_key: {field: ticket.ticket_id} # the Kafka key (ordering); default: the event id
tenant: {value: northwind}              # a fixed value, a field or a header
payload: {field: ticket}                # the part of the body the agent reads; default: all of it
```
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streams.core.config_file import validation_problems
from streams.core.connectors import SecretRef
from streams.core.domain import RequestEvent
from streams.core.errors import ConfigError
from streams.ingest.signatures import Scheme

_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")
MAX_ID_CHARS = 200


class SourceConfigError(ConfigError):
    reason = "source_config_invalid"


class WebhookRefused(Exception):
    """The webhook is signed, but its body cannot become an event (400)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Signature(_Strict):
    scheme: Scheme
    secret: SecretRef


class Pick(_Strict):
    """Where a value comes from: a field of the JSON body (a dotted path), a header, or a fixed value."""

    field: str | None = None
    header: str | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Pick:
        if sum(x is not None for x in (self.field, self.header, self.value)) != 1:
            raise ValueError("name exactly one of field, header or value")
        return self

    def take(self, body: Any, headers: dict[str, str]) -> Any:
        if self.value is not None:
            return self.value
        if self.header is not None:
            return headers.get(self.header.lower())
        node = body
        for part in (self.field or "").split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


class Source(_Strict):
    name: str
    agent: str = Field(min_length=1)
    signature: Signature
    tolerance_s: float = Field(default=300.0, gt=0, le=3600)
    event_id: Pick
    business_key: Pick | None = None
    tenant: Pick = Pick(value="default")
    payload: Pick | None = None
    max_body_bytes: int = Field(default=256 * 1024, gt=0, le=8 * 1024 * 1024)
    requests_per_minute: float = Field(default=600.0, gt=0)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower-case letters, digits, - or _, 2-63 characters, starting with a letter")
        return value

    def event(self, body: bytes, headers: dict[str, str], *, now_ms: int | None = None) -> RequestEvent:
        """The request envelope of a (verified) webhook; ``WebhookRefused`` when the body cannot be one."""
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise WebhookRefused(f"the body is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise WebhookRefused("the body must be a JSON object")
        lowered = {k.lower(): v for k, v in headers.items()}
        event_id = _text(self.event_id.take(document, lowered), "event_id")
        payload = self.payload.take(document, lowered) if self.payload else document
        if not isinstance(payload, dict):
            raise WebhookRefused("payload: the picked part of the body is not a JSON object")
        key = _text(self.business_key.take(document, lowered), "business_key") if self.business_key else event_id
        return RequestEvent(
            event_id=f"{self.name}:{event_id}",  # two sources' ids never meet
            occurred_at_ms=now_ms if now_ms is not None else int(time.time() * 1000),
            tenant=_text(self.tenant.take(document, lowered), "tenant"),
            source_system=self.name,
            business_key=key,
            payload=payload,
            payload_json=orjson.dumps(payload).decode(),
        )


def _text(value: Any, what: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise WebhookRefused(f"{what}: the webhook has no value for it")
    if len(value) > MAX_ID_CHARS:
        raise WebhookRefused(f"{what}: longer than {MAX_ID_CHARS} characters")
    return value


def load_sources(directory: Path) -> dict[str, Source]:
    """Every ``*.yaml`` in ``directory`` by name; none when the folder does not exist."""
    if not directory.is_dir():
        return {}
    sources: dict[str, Source] = {}
    for path in sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            source = Source.model_validate(document)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise SourceConfigError(f"{path}: cannot read the source file: {exc}") from exc
        except ValidationError as exc:
            raise SourceConfigError(f"{path}: {'; '.join(validation_problems(exc))}") from exc
        if source.name in sources:
            raise SourceConfigError(f"{path}: name: source {source.name!r} is declared twice")
        sources[source.name] = source
    return sources
