"""Connectors as declared data: one YAML file per business system in ``deploy/connectors/``
(``KEEL_CONNECTORS_DIR``), validated by pydantic. The tool clients (connectors/tools/) are built from
these; an agent's ``tools`` block (streams/agent/tools_policy.py) names the tools it may call.

A connector is an HTTP API (its operations declared here as tools) or an MCP server (its tools listed by
the server, those an agent may use named by the agent). It carries what every call to the system
shares: authentication (secrets named, never written here: an environment variable or a file), a
timeout, retries with backoff, a circuit breaker, a rate limit and a response size limit. An agent
names the tools it may use (``tools.allow``); anything else is refused when the agent is loaded.
A secret is read only when a client is built (``SecretRef.read``), into a ``SecretStr``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from streams.core.config_file import validation_problems
from streams.core.errors import ConnectorConfigError

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
_TOOL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")  # what OpenAI and Anthropic accept as a tool name
_PATH_ARGUMENT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """Where a secret is: an environment variable or a file (its first line). Never the value."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("name exactly one of env (an environment variable) or file")
        return self

    def read(self, what: str) -> SecretStr:
        """The secret, read now; ``what`` names it in the error when it cannot be (never its value)."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ConnectorConfigError(f"{what}: the environment variable {self.env} is not set")
            return SecretStr(value)
        assert self.file is not None
        try:
            lines = self.file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConnectorConfigError(f"{what}: cannot read {self.file}: {type(exc).__name__}") from exc
        if not lines or not lines[0].strip():
            raise ConnectorConfigError(f"{what}: {self.file} is empty")
        return SecretStr(lines[0].strip())


class BearerAuth(_Strict):
    type: Literal["bearer"]
    token: SecretRef


class BasicAuth(_Strict):
    type: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretRef


class ClientCredentialsAuth(_Strict):
    """OAuth 2.0 client credentials (RFC 6749 section 4.4): a token fetched, cached and refreshed
    before it expires."""

    type: Literal["oauth2_client_credentials"]
    token_url: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretRef
    scope: str | None = None
    audience: str | None = None


Auth = Annotated[BearerAuth | BasicAuth | ClientCredentialsAuth, Field(discriminator="type")]


class RetryPolicy(_Strict):
    max_retries: int = Field(default=2, ge=0, le=10, description="Transient failures asked again, in the timeout")
    backoff_s: PositiveFloat = 0.2
    max_backoff_s: PositiveFloat = 5.0


class CircuitPolicy(_Strict):
    failure_threshold: int = Field(default=5, ge=1)
    cooldown_s: PositiveFloat = 30.0


class ConnectorRateLimit(_Strict):
    requests_per_minute: int | None = Field(default=None, gt=0, description="All workers together")


class HttpTool(_Strict):
    """A named operation on an HTTP connector. ``{name}`` parts of ``path`` take arguments (URL
    encoded); the other arguments go in the query string (GET, DELETE) or as the JSON body."""

    description: str = Field(min_length=1)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(pattern=r"^/")
    arguments: dict[str, Any] = Field(description="JSON Schema of the arguments (an object)")
    effect: Literal["read", "write"] | None = Field(
        default=None, description="write: the call changes the system (default for every method but GET)"
    )

    @field_validator("arguments")
    @classmethod
    def _an_object(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if schema.get("type") != "object":
            raise ValueError("must be a JSON Schema of type object")
        return schema

    @model_validator(mode="after")
    def _path_arguments_declared(self) -> HttpTool:
        declared = set(self.arguments.get("properties", {}))
        missing = sorted(set(_PATH_ARGUMENT.findall(self.path)) - declared)
        if missing:
            raise ValueError(f"path {self.path!r} uses {', '.join(missing)}, not declared in arguments.properties")
        return self

    @property
    def writes(self) -> bool:
        return self.effect == "write" if self.effect is not None else self.method != "GET"

    def path_arguments(self) -> list[str]:
        return _PATH_ARGUMENT.findall(self.path)


class ConnectorDefinition(_Strict):
    name: str
    description: str = ""
    kind: Literal["http", "mcp"]
    base_url: str | None = Field(default=None, description="http: the API's root; mcp over HTTP: the endpoint")
    transport: Literal["stdio", "http"] | None = Field(default=None, description="mcp: how to reach the server")
    command: list[str] | None = Field(default=None, description="mcp over stdio: the server's command line")
    auth: Auth | None = None
    timeout_s: PositiveFloat = 10.0
    retries: RetryPolicy = RetryPolicy()
    circuit: CircuitPolicy = CircuitPolicy()
    rate_limit: ConnectorRateLimit = ConnectorRateLimit()
    max_response_bytes: int = Field(default=1024 * 1024, gt=0, le=64 * 1024 * 1024)
    tools: dict[str, HttpTool] = Field(default_factory=dict, description="http: the operations agents may call")
    write_tools: list[str] = Field(default_factory=list, description="mcp: the tools that change the system")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower_snake_case, 2-63 characters, starting with a letter")
        return value

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, tools: dict[str, HttpTool]) -> dict[str, HttpTool]:
        bad = [name for name in tools if not _TOOL.match(name)]
        if bad:
            raise ValueError(f"tool names must match {_TOOL.pattern}: {', '.join(bad)}")
        return tools

    @model_validator(mode="after")
    def _kind_fields(self) -> ConnectorDefinition:
        if self.kind == "http":
            if not self.base_url or not self.tools or self.transport or self.command or self.write_tools:
                raise ValueError("an http connector takes base_url and tools (not transport, command, write_tools)")
        elif self.transport == "stdio":
            if not self.command or self.base_url or self.tools:
                raise ValueError("an mcp connector over stdio takes command (not base_url or tools)")
        elif self.transport != "http" or not self.base_url or self.command or self.tools:
            raise ValueError("an mcp connector takes transport stdio (with command) or http (with base_url)")
        return self

    def writes(self, tool: str) -> bool:
        """Whether ``tool`` changes the system: it gets an idempotency key and is never called twice
        for one step of one event."""
        if self.kind == "http":
            return tool in self.tools and self.tools[tool].writes
        return tool in self.write_tools


def parse_connector(path: Path) -> ConnectorDefinition:
    where = str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConnectorConfigError(f"{where}: cannot read the connector file: {exc}") from exc
    if not isinstance(document, dict):
        raise ConnectorConfigError(f"{where}: the file must contain a YAML mapping of connector fields")
    try:
        return ConnectorDefinition.model_validate(document)
    except ValidationError as exc:
        raise ConnectorConfigError(f"{where}: {'; '.join(validation_problems(exc))}") from exc


def load_connectors(directory: Path) -> dict[str, ConnectorDefinition]:
    """Every ``*.yaml`` in ``directory`` by name; none when the folder does not exist."""
    if not directory.is_dir():
        return {}
    connectors: dict[str, ConnectorDefinition] = {}
    for path in sorted(p for p in directory.glob("*.y*ml") if p.suffix in (".yaml", ".yml")):
        connector = parse_connector(path)
        if connector.name in connectors:
            raise ConnectorConfigError(f"{path}: name: connector {connector.name!r} is declared twice")
        connectors[connector.name] = connector
    return connectors
