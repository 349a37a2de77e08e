"""Keel's calls to a Schema Registry, over confluent-kafka's ``SchemaRegistryClient`` (synchronous: they
run at start-up, and once per schema id not met before).

Errors are wrapped at this boundary: 401/403 and a schema the registry rejects are
``SchemaRegistryRefused`` (a configuration error, named by setting), no answer or a 5xx after the
client's retries is ``SchemaRegistryUnavailable``. No message carries a secret: credentials go to the
client's configuration only, and the URL is shown without any user info.
"""

from __future__ import annotations

from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import orjson
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

# The HTTP client confluent-kafka's registry client uses (2.16.1: httpx2, else httpx); its transport
# errors are what an unreachable registry raises.
from confluent_kafka.schema_registry.common._httpx_compat import httpx as registry_http
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.core.errors import SchemaRegistryRefused, SchemaRegistryUnavailable
from streams.core.settings import Settings

_NOT_FOUND = {40401, 40402, 40403}


def registry_url(settings: Settings) -> str:
    """The configured registry URL(s), user info included (a secret: show ``shown(url)`` instead)."""
    url = settings.schema_registry_url
    return url.get_secret_value().strip() if url is not None else ""


def client_config(settings: Settings) -> dict[str, Any]:
    """confluent-kafka's configuration from Keel's settings (secrets included: never log it)."""
    url = registry_url(settings)
    if not url:
        raise SchemaRegistryRefused("KEEL_SCHEMA_REGISTRY_URL is not set")
    conf: dict[str, Any] = {"url": url, "timeout": settings.schema_registry_timeout_s, "max.retries": 2}
    if settings.schema_registry_user is not None:
        password = settings.schema_registry_password
        secret = password.get_secret_value() if password is not None else ""
        conf["basic.auth.user.info"] = f"{settings.schema_registry_user}:{secret}"
    if settings.schema_registry_token is not None:
        if settings.schema_registry_user is not None:
            raise SchemaRegistryRefused("set KEEL_SCHEMA_REGISTRY_USER or KEEL_SCHEMA_REGISTRY_TOKEN, not both")
        conf["bearer.auth.credentials.source"] = "STATIC_TOKEN"
        conf["bearer.auth.token"] = settings.schema_registry_token.get_secret_value()
        conf["bearer.auth.logical.cluster"] = settings.schema_registry_logical_cluster or ""
    if settings.schema_registry_ca_file is not None:
        conf["ssl.ca.location"] = str(settings.schema_registry_ca_file)
    return conf


def shown(url: str) -> str:
    """The registry URL(s) without user info, fit for a message."""
    parts = [urlsplit(one.strip()) for one in url.split(",")]
    return ",".join(urlunsplit(p._replace(netloc=p.hostname or "" if p.port is None else f"{p.hostname}:{p.port}"))
                    for p in parts)  # fmt: skip


class RegistryClient:
    def __init__(self, settings: Settings, *, client: SchemaRegistryClient | None = None) -> None:
        self._where = shown(registry_url(settings))
        try:
            self._client = client or SchemaRegistryClient(client_config(settings))
        except (ValueError, TypeError) as exc:
            raise SchemaRegistryRefused(f"the Schema Registry settings are invalid: {exc}") from exc

    def compatible(self, subject: str, raw: Any) -> bool:
        """Is ``raw`` backward compatible with the subject's latest version? True when the subject has none."""
        try:
            return bool(self._client.test_compatibility(subject, _schema(raw), version="latest"))
        except SchemaRegistryError as exc:
            if exc.error_code in _NOT_FOUND:
                return True
            self._fail(exc, f"testing the compatibility of {subject}")
        except registry_http.HTTPError as exc:
            self._unreachable(exc)

    def register(self, subject: str, raw: Any) -> int:
        """The registry's id of ``raw`` under ``subject``, registered now if it is new there."""
        try:
            return int(self._client.register_schema(subject, _schema(raw)))
        except SchemaRegistryError as exc:
            self._fail(exc, f"registering {subject}")
        except registry_http.HTTPError as exc:
            self._unreachable(exc)

    def latest_id(self, subject: str) -> int | None:
        try:
            return self._client.get_latest_version(subject).schema_id
        except SchemaRegistryError as exc:
            if exc.error_code in _NOT_FOUND:
                return None
            self._fail(exc, f"reading the latest version of {subject}")
        except registry_http.HTTPError as exc:
            self._unreachable(exc)

    def fetch(self, schema_id: int) -> Any | None:
        """The Avro schema (parsed JSON) under ``schema_id``; None when the registry has no such id or it
        is not an Avro schema."""
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.error_code in _NOT_FOUND:
                return None
            self._fail(exc, f"reading schema id {schema_id}")
        except registry_http.HTTPError as exc:
            self._unreachable(exc)
        if (schema.schema_type or "AVRO") != "AVRO" or schema.schema_str is None:
            return None
        return orjson.loads(schema.schema_str)

    def close(self) -> None:
        self._client.close()

    def _fail(self, exc: SchemaRegistryError, doing: str) -> NoReturn:
        status = exc.http_status_code
        if status in (401, 403):
            who = "KEEL_SCHEMA_REGISTRY_USER/_PASSWORD or KEEL_SCHEMA_REGISTRY_TOKEN"
            raise SchemaRegistryRefused(f"{self._where} refused {doing} ({status}): check {who}") from exc
        if status >= 500 or status < 0:
            raise SchemaRegistryUnavailable(f"{self._where} failed {doing}: {status} {exc.error_message}") from exc
        raise SchemaRegistryRefused(
            f"{self._where} refused {doing}: {status} error {exc.error_code}: {exc.error_message}"
        ) from exc

    def _unreachable(self, exc: registry_http.HTTPError) -> NoReturn:
        raise SchemaRegistryUnavailable(f"cannot reach the Schema Registry at {self._where}: {exc!r}") from exc


def _schema(raw: Any) -> Schema:
    return Schema(orjson.dumps(raw).decode(), "AVRO")
