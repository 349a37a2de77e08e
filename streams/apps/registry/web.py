"""Keel's catalogue over the Confluent Schema Registry REST API (aiohttp), so that a standard client
(confluent-kafka's ``SchemaRegistryClient`` and ``AvroDeserializer``, Kafka Connect's AvroConverter)
decodes Keel's topics with no other server. `keel registry serve` runs it (streams/cli/registry.py).

Routes (what confluent-kafka 2.16.1's client calls to read, and a little more): ``GET /schemas/ids/{id}``
(``subject``, ``format`` and the other query parameters are accepted and ignored: ids are global),
``/schemas/ids/{id}/schema``, ``/schemas/ids/{id}/versions``, ``/schemas/ids/{id}/subjects``,
``/schemas/types``, ``GET /subjects``, ``/subjects/{s}/versions``, ``/subjects/{s}/versions/{v|latest}``
(and ``/schema``), ``POST /subjects/{s}`` (lookup), ``POST /compatibility/subjects/{s}/versions/{v}``,
``GET /config``, ``/config/{s}``, ``/mode``. ``POST /subjects/{s}/versions`` registers only in write
mode (the test stand-in, streams/apps/registry/store.py); read-only it answers 42205.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from streams.apps.registry.store import RegistryError, SchemaStore, Stored

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
STORE_KEY = web.AppKey("registry_store", SchemaStore)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers={"Content-Type": CONTENT_TYPE})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as exc:
        return answer({"error_code": exc.error_code, "message": exc.message}, exc.status)
    except web.HTTPException as exc:  # an unknown route or method, as the registry's Jersey answers them
        if exc.status < 400:
            raise
        return answer({"error_code": exc.status, "message": f"HTTP {exc.status} {exc.reason}"}, exc.status)


def build_app(store: SchemaStore) -> web.Application:
    app = web.Application(middlewares=[_errors])
    app[STORE_KEY] = store
    routes = [
        ("GET", "/", _root),
        ("GET", "/schemas/types", _types),
        ("GET", "/schemas/ids/{id:\\d+}", _schema),
        ("GET", "/schemas/ids/{id:\\d+}/schema", _schema_text),
        ("GET", "/schemas/ids/{id:\\d+}/versions", _id_versions),
        ("GET", "/schemas/ids/{id:\\d+}/subjects", _id_subjects),
        ("GET", "/subjects", _subjects),
        ("POST", "/subjects/{subject}", _lookup),
        ("GET", "/subjects/{subject}/versions", _versions),
        ("POST", "/subjects/{subject}/versions", _register),
        ("GET", "/subjects/{subject}/versions/{version}", _version),
        ("GET", "/subjects/{subject}/versions/{version}/schema", _version_text),
        ("POST", "/compatibility/subjects/{subject}/versions/{version}", _compatibility),
        ("GET", "/config", _config),
        ("GET", "/config/{subject}", _config),
        ("GET", "/mode", _mode),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return app


def _store(request: web.Request) -> SchemaStore:
    return request.app[STORE_KEY]


def _registered(subject: str, version: int, stored: Stored) -> dict[str, Any]:
    """A subject version, as ``GET /subjects/{s}/versions/{v}`` and the lookup answer it (schemaType is
    left out for Avro, as the registry does)."""
    return {"subject": subject, "version": version, "id": stored.id, "schema": stored.schema}


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise RegistryError(400, 400, f"Unrecognized request body: {exc}") from exc


async def _root(_request: web.Request) -> web.Response:
    return answer({})


async def _types(_request: web.Request) -> web.Response:
    return answer(["AVRO"])


async def _schema(request: web.Request) -> web.Response:
    return answer({"schema": _store(request).schema(int(request.match_info["id"])).schema})


async def _schema_text(request: web.Request) -> web.Response:
    return answer(_store(request).schema(int(request.match_info["id"])).raw)


async def _id_versions(request: web.Request) -> web.Response:
    pairs = _store(request).subjects_of(int(request.match_info["id"]))
    return answer([{"subject": subject, "version": version} for subject, version in pairs])


async def _id_subjects(request: web.Request) -> web.Response:
    pairs = _store(request).subjects_of(int(request.match_info["id"]))
    return answer(sorted({subject for subject, _ in pairs}))


async def _subjects(request: web.Request) -> web.Response:
    prefix = request.query.get("subjectPrefix", "")
    return answer([s for s in _store(request).subjects() if s.startswith(prefix)])


async def _versions(request: web.Request) -> web.Response:
    return answer(_store(request).versions(request.match_info["subject"]))


async def _version(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    number, stored = _store(request).version(subject, request.match_info["version"])
    return answer(_registered(subject, number, stored))


async def _version_text(request: web.Request) -> web.Response:
    _, stored = _store(request).version(request.match_info["subject"], request.match_info["version"])
    return answer(stored.raw)


async def _lookup(request: web.Request) -> web.Response:
    subject = request.match_info["subject"]
    number, stored = _store(request).lookup(subject, await _body(request))
    return answer(_registered(subject, number, stored))


async def _register(request: web.Request) -> web.Response:
    schema_id = _store(request).register(request.match_info["subject"], await _body(request))
    return answer({"id": schema_id})


async def _compatibility(request: web.Request) -> web.Response:
    subject, version = request.match_info["subject"], request.match_info["version"]
    problems = _store(request).compatibility(subject, version, await _body(request))
    body: dict[str, Any] = {"is_compatible": not problems}
    if request.query.get("verbose", "false").lower() == "true":
        body["messages"] = problems
    return answer(body)


async def _config(_request: web.Request) -> web.Response:
    return answer({"compatibilityLevel": "BACKWARD"})


async def _mode(request: web.Request) -> web.Response:
    return answer({"mode": "READWRITE" if _store(request).writable else "READONLY"})
