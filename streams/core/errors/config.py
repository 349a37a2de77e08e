"""Errors in what operators declare or deploy: agent files, schemas, pricing, budgets, connectors, and
joining the Kafka cluster. Raised at start-up (or on a refused change), naming the file or setting."""

from __future__ import annotations

from streams.core.errors.base import KeelError

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


class ConnectorConfigError(ConfigError):
    reason = "connector_config_invalid"


class UnknownProvider(ConfigError):
    reason = "unknown_provider"
