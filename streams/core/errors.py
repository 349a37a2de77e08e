"""The one error tree.

Every error Keel raises on purpose is a ``KeelError``. Subclasses carry two class attributes:
``reason`` (a stable code that dead letters, usage records and alerts use) and ``retriable`` (whether
trying the same thing again may succeed). Third-party errors are wrapped at the boundary with
``raise ... from exc`` so the original cause stays attached.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.core.ports.model import ProviderLimits


class KeelError(Exception):
    reason = "internal"
    retriable = False


# --- configuration -------------------------------------------------------------------------------


class ConfigError(KeelError):
    reason = "config_invalid"


class AgentDefinitionError(ConfigError):
    """An agent file is invalid; the message names the file and the field."""

    reason = "agent_definition_invalid"

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class SchemaCatalogueError(ConfigError):
    reason = "schema_catalogue_invalid"


class SchemaRegistryRefused(ConfigError):
    """The Schema Registry refused Keel at start-up (credentials, permissions, a schema it rejects)."""

    reason = "schema_registry_refused"


class IncompatibleSchema(ConfigError):
    """A schema Keel writes is not backward compatible with its subject's latest version."""

    reason = "schema_incompatible"


class SchemaRegistryUnavailable(KeelError):
    """The Schema Registry could not be reached (or answered 5xx) after the client's retries."""

    reason = "schema_registry_unavailable"
    retriable = True


class PricingError(ConfigError):
    reason = "pricing_invalid"


class BudgetConfigError(ConfigError):
    reason = "budget_config_invalid"


class RateLimitTableError(ConfigError):
    reason = "rate_limits_invalid"


class AgentConfigRefused(ConfigError):
    """A change of an agent's live configuration that cannot be made (streams/agent/versions.py)."""

    reason = "agent_config_refused"


class ChangeNotPermitted(ConfigError):
    """The user who asks for a configuration change is unknown, gave a wrong password, or may not
    change that agent (streams/cli/sign_in.py)."""

    reason = "change_not_permitted"


class EvalInputError(ConfigError):
    """`keel eval` cannot use its inputs: a golden file that is not one {event, expected} per line, or
    no events to run."""

    reason = "eval_input_invalid"


# --- joining the Kafka cluster (one clear error at start-up, naming the setting; never a secret) ---------


class KafkaAccessError(ConfigError):
    """The cluster refused this client: not a retry loop, one error at start-up naming the setting."""

    reason = "kafka_access_refused"


class KafkaAuthRejected(KafkaAccessError):
    reason = "kafka_auth_failed"


class KafkaTlsRejected(KafkaAccessError):
    reason = "kafka_tls_failed"


class KafkaAclMissing(KafkaAccessError):
    """The principal authenticated, but lacks an ACL it needs; the message names each one."""

    reason = "kafka_acl_missing"


# --- decoding input events ------------------------------------------------------------------------


class DecodeError(KeelError):
    """The input bytes are not a valid request event."""

    reason = "decode_failed"


class NotConfluentFramed(DecodeError):
    reason = "wrong_magic_byte"


class UnknownSchemaId(DecodeError):
    reason = "unknown_schema_id"


class UnexpectedSchema(DecodeError):
    reason = "unexpected_schema"


class MalformedAvro(DecodeError):
    reason = "malformed_avro"


class InvalidUtf8(DecodeError):
    reason = "invalid_utf8"


class UnexpectedValue(DecodeError):
    """The value decodes, but a field holds what Keel never writes (a partition that does not exist,
    a key that is not UTF-8, a number that is not finite)."""

    reason = "unexpected_value"


class EventTooLarge(DecodeError):
    reason = "event_too_large"


class InvalidPayload(DecodeError):
    reason = "invalid_payload"


class FieldTooLong(DecodeError):
    """An identifier longer than Keel carries: it goes into keys and headers of every record."""

    reason = "field_too_long"


class ControlHeaderForged(DecodeError):
    """A control header (replay, re-run, pass, models to skip) whose signature does not verify: not
    written by Keel, or copied onto another record (streams/contracts/control.py)."""

    reason = "control_header_forged"


class ControlHeaderMalformed(DecodeError):
    """A signed control header that cannot be read: repeated, not UTF-8, or a pass that is no number."""

    reason = "control_header_malformed"


class ConfigVersionUnavailable(DecodeError):
    """A replay pinned to an agent version this worker cannot run (unknown, or refused)."""

    reason = "config_version_unavailable"


class EventIdConflict(DecodeError):
    """A record that reuses the event id of another, already recorded input: it never receives that
    event's outcome (streams/kafka/outcome_store.py)."""

    reason = "event_id_conflict"


# --- prompt ---------------------------------------------------------------------------------------


class PromptRenderError(KeelError):
    reason = "prompt_field_missing"


# --- model providers ------------------------------------------------------------------------------


class ProviderError(KeelError):
    reason = "provider_error"
    retriable = True

    def __init__(self, message: str = "", *, limits: ProviderLimits | None = None, sent: bool = True) -> None:
        self.limits = limits  # what the failed answer said about rate limits, if anything
        # False only when the request surely never reached the provider (no connection): otherwise it
        # may have been served, and billed, even without an answer
        self.sent = sent
        super().__init__(message)


class ProviderTimeout(ProviderError):
    reason = "provider_timeout"


class ProviderConnectionError(ProviderError):
    reason = "provider_unreachable"


class ProviderRateLimited(ProviderError):
    reason = "provider_rate_limited"

    def __init__(self, message: str, *, retry_after_s: float | None, limits: ProviderLimits | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, limits=limits)


class RateLimitWait(ProviderRateLimited):
    """Keel's own rate limiter would hold the call past the event's deadline; no call was made."""

    reason = "rate_limit_wait"


class ProviderServerError(ProviderError):
    reason = "provider_5xx"


class ProviderAuthError(ProviderError):
    reason = "provider_auth"
    retriable = False


class ContextLengthExceeded(ProviderError):
    reason = "context_length_exceeded"
    retriable = False


class ProviderRequestRejected(ProviderError):
    """A 4xx other than auth, rate limit or context length: the request itself is wrong."""

    reason = "provider_bad_request"
    retriable = False


class ProviderBadResponse(ProviderError):
    """The provider answered 2xx with a body that is not a chat completion."""

    reason = "provider_bad_response"


class ModelRefused(ProviderError):
    """The provider returned a refusal or stopped on its content filter."""

    reason = "model_refused"
    retriable = False


# --- model output ---------------------------------------------------------------------------------


class ModelVersionChanged(KeelError):
    """The provider answered with a model version other than the one the agent pins."""

    reason = "model_version_changed"


class OutputError(KeelError):
    """The model answered, but its answer is not a valid output for the agent."""

    reason = "output_invalid"
    retriable = True  # asking again (re-ask or another model) may succeed


class OutputNotJson(OutputError):
    reason = "output_not_json"


class OutputTruncated(OutputError):
    reason = "output_truncated"


class OutputSchemaViolation(OutputError):
    reason = "output_schema_violation"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class ToolCallInvalid(OutputError):
    """The model asked for a tool it may not use, or with arguments that do not match the tool's
    schema: asked again, like an invalid answer, with the problems."""

    reason = "tool_call_invalid"

    def __init__(self, problems: list[str], *, by_call: Mapping[str, list[str]] | None = None) -> None:
        self.problems = problems
        self.by_call = dict(by_call or {})  # the problems of each call, by its id
        super().__init__("; ".join(problems))


# --- tools (connectors: HTTP APIs and MCP servers) --------------------------------------------------


class ToolError(KeelError):
    """A tool call that could not be made or answered. ``sent``: it may have reached the system (and,
    for a write tool, taken effect); its idempotency key makes asking again safe."""

    reason = "tool_error"
    retriable = True

    def __init__(self, message: str = "", *, sent: bool = True, retry_after_s: float | None = None) -> None:
        self.sent = sent
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ToolTimeout(ToolError):
    reason = "tool_timeout"


class ToolUnavailable(ToolError):
    """No connection, a 5xx, a 429, an MCP server that is not running."""

    reason = "tool_unavailable"


class ToolAuthFailed(ToolError):
    reason = "tool_auth_failed"
    retriable = False


class ToolResponseInvalid(ToolError):
    """An answer over the connector's size limit, or not what the protocol says."""

    reason = "tool_response_invalid"
    retriable = False


class ToolStepsExceeded(KeelError):
    """The model kept calling tools past the agent's ``tools.max_steps``."""

    reason = "tool_steps_exceeded"


class ContextMissing(KeelError):
    """A context lookup the agent needs found nothing for the event (an unknown key, a 404)."""

    reason = "context_missing"


class ConnectorConfigError(ConfigError):
    reason = "connector_config_invalid"


# --- model chain ---------------------------------------------------------------------------------


class DeadlineExceeded(KeelError):
    """The event's deadline passed before any model gave a valid answer."""

    reason = "deadline_exceeded"
    retriable = True


class NoModelAvailable(KeelError):
    """No model of the chain can take the event: their context windows are too small."""

    reason = "no_model_available"


class CircuitOpen(NoModelAvailable):
    """Every model that could take the event is skipped because its circuit is open; it may close."""

    reason = "circuit_open"
    retriable = True


class NoModelLeftForRerun(NoModelAvailable):
    """A re-run after a reviewer's rejection leaves out the model that was rejected, and the chain
    has no other model."""

    reason = "no_model_left_for_rerun"


class BudgetExhausted(KeelError):
    """The next call would pass a hard budget limit: the event parks until the period ends or the
    budget is raised (streams/cost/budget.py)."""

    reason = "budget_exhausted"

    def __init__(self, message: str, *, scope: str, period: str, until_ms: int) -> None:
        super().__init__(message)
        self.scope, self.period, self.until_ms = scope, period, until_ms


class UnknownProvider(ConfigError):
    reason = "unknown_provider"


class MissingField(DecodeError):
    reason = "missing_required_field"


class WriteRejected(KeelError):
    """The broker, or the client, will never take this record (too large, invalid): sending it again
    cannot succeed (streams/kafka/producer.py)."""

    reason = "write_rejected"
