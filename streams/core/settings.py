"""One settings object, read from the environment (prefix ``KEEL_``) in one place."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.core.kafka_security import KafkaSecuritySettings

REPO_ROOT = Path(__file__).resolve().parents[2]


class ProviderSettings(BaseModel):
    """A model endpoint: OpenAI-compatible chat completions or the Anthropic Messages API (``protocol``).
    ``base_url`` includes ``/v1``."""

    base_url: str
    protocol: Literal["openai", "anthropic"] = "openai"
    api_key: SecretStr | None = None
    max_connections: int = Field(default=256, gt=0)
    # How the endpoint takes a JSON Schema for the answer: "json_schema" (OpenAI, vLLM, Ollama,
    # llama.cpp's server) or "json_object" (llama-cpp-python's server).
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    # Calls open at once to each model of the endpoint, per worker and all agents together; more wait
    # in Keel (streams/pipeline/model_slots.py), their timeout not yet running. None: no limit. A chain entry's
    # own max_concurrent can only lower it.
    max_concurrent: int | None = Field(default=None, gt=0)


# Endpoints Keel knows without configuration: the embedded llama.cpp server and the simulator.
BUILTIN_PROVIDERS = {
    # llama.cpp's Python server answers one request at a time: more connections would only contend there,
    # and a request queued in the server spends its timeout waiting. So one call at a time, queued in Keel.
    "local": ProviderSettings(
        base_url="http://127.0.0.1:8080/v1", response_format="json_object", max_connections=1, max_concurrent=1
    ),
    "sim": ProviderSettings(base_url="http://127.0.0.1:8090/v1"),
    # The same simulator, spoken to over the Anthropic Messages API (it serves both).
    "sim_anthropic": ProviderSettings(base_url="http://127.0.0.1:8090/v1", protocol="anthropic"),
}


class Settings(KafkaSecuritySettings, BaseSettings):
    """Every ``KEEL_...`` setting (docs/operations.md); the ``KEEL_KAFKA_...`` security block is
    streams/core/kafka_security.py."""

    model_config = SettingsConfigDict(env_prefix="KEEL_", env_nested_delimiter="__", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    namespace: str = Field(default="", description="Prefix for every topic and the consumer group")
    agents_dir: Path = REPO_ROOT / "deploy" / "agents"
    connectors_dir: Path = Field(
        default=REPO_ROOT / "deploy" / "connectors",
        description="Connector files: the HTTP APIs and MCP servers agents' tools call (streams/core/connectors.py)",
    )
    schemas_dir: Path = REPO_ROOT / "schemas"
    sources_dir: Path = Field(
        default=REPO_ROOT / "deploy" / "sources",
        description="Webhook source files `keel ingest serve` accepts (streams/ingest/sources.py)",
    )
    ingest_web_host: str = Field(default="127.0.0.1", description="`keel ingest serve` binds here")
    ingest_web_port: int = Field(default=6072, ge=0, le=65535, description="`keel ingest serve`'s port")
    # The Schema Registry (docs/topics.md#schema-ids-and-the-registry): client mode, and Keel's own endpoint.
    registry_web_host: str = Field(
        default="127.0.0.1", description="`keel registry serve` binds here (the catalogue over the registry API)"
    )
    registry_web_port: int = Field(default=6071, ge=0, le=65535, description="`keel registry serve`'s port")
    # A secret: a registry URL may carry user info (https://user:password@host), as Confluent's client takes it.
    schema_registry_url: SecretStr | None = Field(
        default=None, description="A Confluent-compatible Schema Registry: its ids go in the wire format (client mode)"
    )
    schema_registry_user: str | None = Field(default=None, description="Basic auth user for the registry")
    schema_registry_password: SecretStr | None = Field(default=None, description="Basic auth password")
    schema_registry_token: SecretStr | None = Field(default=None, description="A bearer token, instead of basic auth")
    schema_registry_logical_cluster: str | None = Field(
        default=None, description="Sent as target-sr-cluster with the bearer token (Confluent Cloud: lsrc-...)"
    )
    schema_registry_ca_file: Path | None = Field(default=None, description="CA bundle the registry's TLS must chain to")
    schema_registry_timeout_s: float = Field(default=10.0, gt=0, description="One registry request")
    pricing_file: Path = Field(
        default=REPO_ROOT / "deploy" / "pricing.yaml", description="The price table (streams/cost/pricing.py)"
    )
    budgets_file: Path = Field(
        default=REPO_ROOT / "deploy" / "budgets.yaml", description="Budgets per tenant, and agents' overrides"
    )
    budget_answer_timeout_s: float = Field(
        default=10.0, gt=0, description="A budget request not answered by then is sent again (its owner moved)"
    )
    budget_resume_poll_s: float = Field(
        default=10.0, gt=0, description="How often a parked event asks whether its budget has room again"
    )
    rate_limits_file: Path = Field(
        default=REPO_ROOT / "deploy" / "rate_limits.yaml", description="Rate limits of provider models"
    )
    rate_limit_burst_s: float = Field(
        default=5.0, ge=0, description="How many seconds' worth of a rate limit may be spent at once"
    )
    state_dir: Path = REPO_ROOT / ".keel"
    agents: list[str] = Field(default_factory=list, description="Run only these agents (empty: all)")
    partitions: int = Field(default=4, gt=0)
    replication_factor: int = Field(default=1, gt=0)
    max_event_bytes: int = Field(default=256 * 1024, gt=0)
    outcome_retention_hours: float = Field(
        default=168, gt=0, description="How long a redelivered event is recognised and not paid for again"
    )
    circuit_failure_threshold: int = Field(default=5, gt=0, description="Consecutive provider failures")
    circuit_cooldown_s: float = Field(default=30.0, gt=0)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    provider_override: str | None = Field(
        default=None, description="Send every agent's calls to this provider (demo and tests)"
    )
    session_timeout_s: float = Field(
        default=30, ge=6, description="A worker that stops heartbeating loses its partitions after this"
    )
    heartbeat_interval_s: float = Field(default=3, gt=0)
    produce_timeout_s: float = Field(
        default=30, gt=0, description="A record the broker has not taken by then fails and is sent again"
    )
    commit_interval_s: float = Field(default=2.8, gt=0, description="How often acked offsets are committed")
    fetch_max_wait_ms: int = Field(
        default=50, gt=0, description="How long the broker may hold a worker's fetch while it has nothing new"
    )
    max_in_flight: int = Field(
        default=256, gt=0, description="Events in flight in one worker, all agents together (model calls overlap)"
    )
    revoke_grace_s: float = Field(
        default=5.0, ge=0, description="On rebalance or shutdown, how long in-flight events may still end"
    )
    usage_lateness_s: float = Field(
        default=300, ge=0, description="A usage record this much older than its partition's latest is counted as late"
    )
    web_port: int = Field(default=6066, ge=0, description="Worker web server (metrics); 0 disables it")
    aggregator_web_port: int = Field(default=6067, ge=0, description="The usage aggregator's web server; 0: none")
    alert_rules_file: Path = Field(
        default=REPO_ROOT / "deploy" / "alert_rules.yaml", description="In-stream alert rules (streams/alerts/rules.py)"
    )
    alert_eval_interval_s: float = Field(default=5.0, gt=0, description="How often `keel aggregate` evaluates them")
    alert_runbook_base_url: str = Field(
        default="docs/runbooks.md", description="Prefix of every alert's runbook link (#runbook-... is appended)"
    )
    alert_slack_webhook_url: SecretStr | None = Field(default=None, description="A Slack incoming webhook")
    alert_webhook_url: str | None = Field(default=None, description="A webhook taking PagerDuty Events v2 events")
    alert_webhook_routing_key: SecretStr | None = Field(default=None, description="PagerDuty's integration key")
    alert_sink_timeout_s: float = Field(default=10.0, gt=0, description="One delivery attempt to a sink")
    alert_retry_base_s: float = Field(default=1.0, gt=0, description="First wait after a failed delivery")
    alert_retry_max_s: float = Field(default=60.0, gt=0, description="Longest wait between deliveries")
    review_web_host: str = Field(
        default="127.0.0.1", description="`keel review serve` binds here; loopback unless a proxy fronts it"
    )
    review_web_port: int = Field(default=6070, ge=0, le=65535, description="`keel review serve`'s web server")
    review_trusted_proxies: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description="Proxies (addresses or CIDR networks) whose X-Forwarded-For names the review client",
    )
    review_secure_cookies: bool = Field(
        default=False, description="Mark the review UI's cookies Secure: set it when an HTTPS proxy fronts the service"
    )
    review_write_timeout_s: float = Field(
        default=30.0, gt=0, description="A decision the broker has not taken by then is answered with an error"
    )
    review_readback_s: float = Field(
        default=10.0, gt=0, description="How long a decision waits to be read back from its topic (log order)"
    )
    review_sla_check_s: float = Field(
        default=30.0, gt=0, description="How often `keel review serve` checks review SLAs"
    )
    review_session_max_age_s: float = Field(
        default=12 * 3600.0, gt=0, description="A review UI session ends this long after its login, however busy"
    )
    review_users_file: Path = Field(
        default=REPO_ROOT / "deploy" / "reviewers.yaml",
        description="Review UI/API and `keel agent` users: scrypt hashes, roles, agents (`keel review user add`)",
    )
    user: str | None = Field(
        default=None, description="Who `keel agent` and `keel eval` changes are made as: a user of the users file"
    )
    password: SecretStr | None = Field(default=None, description="That user's password (else a prompt)")
    control_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Keys that sign control headers (re-runs, replays), by id; empty: this machine's own key",
    )
    control_signing_key_id: str | None = Field(
        default=None, description="Which of control_keys signs (default: the first); all of them verify"
    )
    dead_letter_max_bytes: int = Field(
        default=512 * 1024,
        ge=16 * 1024,
        description="A dead letter's key, value and headers stay within this; what the input carried past it is cut",
    )
    log_level: str = "info"

    def provider_endpoints(self) -> dict[str, ProviderSettings]:
        """Built-in endpoints, with what the environment sets laid over them, plus any others it names."""
        endpoints = dict(BUILTIN_PROVIDERS)
        for name, configured in self.providers.items():
            base = endpoints.get(name.lower())
            explicit = configured.model_dump(include=configured.model_fields_set)
            endpoints[name.lower()] = base.model_copy(update=explicit) if base else configured
        return endpoints

    def topic(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def app_id(self) -> str:
        return f"keel-{self.namespace}" if self.namespace else "keel"
