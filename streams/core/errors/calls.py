"""Errors of an event's calls to the outside, and of the model chain around them: the prompt, model
providers, model output, tools and context lookups, deadlines, breakers and budgets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from streams.core.errors.base import KeelError

if TYPE_CHECKING:
    from streams.core.ports.model import ProviderLimits


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
