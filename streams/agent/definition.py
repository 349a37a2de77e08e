"""Agents as declared data: a YAML file per agent, validated by pydantic, compiled once at startup.

A definition names the input topic, the prompt templates, the model chain, the output schema (a file
in schemas/ with ids in the catalogue), and the handoff and budget policies.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, field_validator

from streams.agent.context_lookups import ContextLookup, ToolLookup, TopicLookup, check_names
from streams.agent.handoff_policy import HandoffPolicy, schema_problems
from streams.agent.output_schema import to_json_schema
from streams.agent.prompt import PromptTemplates, compile_template
from streams.agent.tools_policy import ToolsPolicy
from streams.core.catalogue import Catalogue, CatalogueSchema
from streams.core.config_file import validation_problems
from streams.core.errors import AgentDefinitionError

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
_LATER_FIELDS = (
    "evaluation",
    "tools",
    "context",
)  # optional fields a digest leaves out while unset (``definition_document``)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptSpec(_Strict):
    system: str = Field(min_length=1)
    user: str = Field(min_length=1)
    trim_optional_context: bool = Field(
        default=False,
        description="When the prompt is too long for a model, leave out the {{ path? }} values before "
        "moving on to a model with a larger context window",
    )


class ModelSpec(_Strict):
    provider: str = Field(min_length=1, description="A provider configured in settings: local, sim, openai, ...")
    model: str = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)
    timeout_s: PositiveFloat = 30.0
    max_retries: int = Field(default=2, ge=0, le=10, description="In-line retries of transient failures")
    context_window: int | None = Field(default=None, gt=0, description="Tokens; skips this model for longer prompts")
    max_concurrent: int | None = Field(
        default=None,
        gt=0,
        description="Calls to this model open at once in a worker, all agents together (the lowest of this "
        "and the provider's max_concurrent applies); unset: the provider's",
    )

    version: str | None = Field(
        default=None,
        min_length=1,
        description="The model version the provider must report (its `model`, before any `+fingerprint`); "
        "another one is a silent upgrade",
    )
    on_version_change: Literal["alert", "review", "dead_letter"] = Field(
        default="alert",
        description="When the provider reports another version: the output goes on with a warning (an "
        "alert rule counts it), is held for review, or the event is a dead letter",
    )

    @property
    def key(self) -> str:
        """Identifies the model for circuit breaking, shared by every agent that uses it."""
        return f"{self.provider}/{self.model}"


class ReliabilityPolicy(_Strict):
    deadline_s: PositiveFloat = Field(default=300.0, description="Per event, from the first attempt")
    max_reasks: int = Field(default=1, ge=0, le=5, description="Re-asks of one model after an invalid answer")
    backoff_base_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 8.0
    on_refusal: Literal["next_model", "review"] = "next_model"
    on_deadline: Literal["dead_letter", "review"] = "dead_letter"
    retry_delays_s: tuple[Annotated[float, Field(gt=0, le=86_400)], ...] = Field(
        default=(30.0, 300.0, 3600.0),
        max_length=10,
        description="Retry tiers for transient failures that outlast the in-line retries; empty: none",
    )


class ConcurrencyPolicy(_Strict):
    ordering: Literal["key", "partition", "unordered"] = Field(
        default="key", description="What must run in order: events with one key, a whole partition, or nothing"
    )
    max_in_flight: int | None = Field(default=None, gt=0, description="Per worker; unset: the worker's limit")


class RateLimitPolicy(_Strict):
    """Calls of one agent (all its models), for every worker of the group together (streams/pipeline/rate_limit.py)."""

    requests_per_minute: PositiveFloat | None = None
    tokens_per_minute: PositiveFloat | None = Field(
        default=None, description="Prompt and answer tokens; a call reserves its estimate, then its real usage"
    )


class BudgetPolicy(_Strict):
    """Hard limits per UTC day and month (streams/cost/budget.py): a call that would pass one parks its event."""

    daily_usd: PositiveFloat | None = None
    monthly_usd: PositiveFloat | None = None
    daily_tokens: int | None = Field(default=None, gt=0)
    monthly_tokens: int | None = Field(default=None, gt=0)
    soft_fraction: float = Field(default=0.8, gt=0, lt=1, description="This share of a limit raises an alert")


class CanaryPolicy(_Strict):
    """When `keel aggregate` rolls a canary back, or promotes it (streams/alerts/canary.py). Rates are
    shares of events; increases are the canary's rate minus the stable version's."""

    min_events: int = Field(default=30, ge=5, description="Events each version must have decided before a verdict")
    max_dead_letter_increase: float = Field(default=0.05, ge=0, le=1)
    max_invalid_increase: float = Field(
        default=0.05, ge=0, le=1, description="Model answers failing parsing or the output schema, per model call"
    )
    max_rejection_increase: float = Field(
        default=0.1, ge=0, le=1, description="Reviewers' rejections per reviewed item"
    )
    max_cost_ratio: float = Field(default=1.5, gt=1, description="Mean cost per event, canary over stable")
    max_latency_ratio: float = Field(default=1.5, gt=1, description="Mean latency per event, canary over stable")
    promote_after_s: float | None = Field(
        default=None, gt=0, description="A canary that holds this long (with enough events) is promoted; unset: by hand"
    )


class EvaluationPolicy(_Strict):
    """What a candidate version must reach in `keel eval` (streams/eval/) for the gate to pass; every
    threshold is optional. Rates are shares in [0, 1]; the baseline's and the candidate's thresholds
    both apply (the stricter of each, streams/eval/thresholds.py)."""

    min_schema_valid_rate: float | None = Field(
        default=None, ge=0, le=1, description="Outputs that validate, of the events that ended valid or invalid"
    )
    min_agreement: float | None = Field(
        default=None, ge=0, le=1, description="Top-level output fields equal to the expected ones (golden, reviews)"
    )
    max_cost_per_event_usd: float | None = Field(default=None, ge=0)
    max_reasks_per_event: float | None = Field(default=None, ge=0)
    max_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Events that ended neither valid nor invalid (provider errors)"
    )


class AgentDefinition(_Strict):
    name: str
    version: str = Field(min_length=1)
    description: str = ""
    input_topic: str = Field(min_length=1)
    prompt: PromptSpec
    model_chain: list[ModelSpec] = Field(min_length=1)
    output_schema: str = Field(description="Path of the output .avsc, relative to the schemas folder")
    reliability: ReliabilityPolicy = ReliabilityPolicy()
    concurrency: ConcurrencyPolicy = ConcurrencyPolicy()
    rate_limit: RateLimitPolicy = RateLimitPolicy()
    handoff: HandoffPolicy = HandoffPolicy()
    budget: BudgetPolicy = BudgetPolicy()
    canary: CanaryPolicy = CanaryPolicy()
    evaluation: EvaluationPolicy | None = None
    tools: ToolsPolicy | None = None
    context: dict[str, ContextLookup] | None = Field(
        default=None,
        description="Lookups before the prompt, addressed as context.<name> (streams/agent/context_lookups.py)",
    )

    @field_validator("context")
    @classmethod
    def _context_names(
        cls, value: dict[str, ToolLookup | TopicLookup] | None
    ) -> dict[str, ToolLookup | TopicLookup] | None:
        return check_names(value) if value is not None else None

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower_snake_case, 2-63 characters, starting with a letter")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


@dataclass(frozen=True, slots=True)
class Agent:
    """A definition compiled for the worker: templates parsed, schemas resolved, versions hashed."""

    definition: AgentDefinition
    source_path: Path
    templates: PromptTemplates
    output_schema: CatalogueSchema
    result_schema: CatalogueSchema
    response_schema: dict[str, Any]  # JSON Schema sent to the model
    config_version: str

    @property
    def name(self) -> str:
        return self.definition.name


def load_agent(path: Path, catalogue: Catalogue) -> Agent:
    return compile_agent(parse_definition(path), catalogue, source_path=path)


def compile_agent(definition: AgentDefinition, catalogue: Catalogue, *, source_path: Path) -> Agent:
    """``definition`` checked against the catalogue and compiled; its config version digests the
    definition and its output schema, so that equal versions (from a file or ``keel.agent-configs``)
    have equal ids."""
    where = str(source_path)
    output = catalogue.output_by_file(definition.output_schema)
    if output is None:
        raise AgentDefinitionError(
            where,
            [f"output_schema: {definition.output_schema} has no entry in the schema catalogue"],
        )
    result = catalogue.result_for_output(definition.output_schema)
    if result is None:
        raise AgentDefinitionError(
            where,
            [f"output_schema: {definition.output_schema} has no composed result schema in the catalogue"],
        )
    handoff_problems = schema_problems(definition.handoff, output.raw)
    if handoff_problems:
        raise AgentDefinitionError(where, handoff_problems)
    templates = PromptTemplates(compile_template(definition.prompt.system), compile_template(definition.prompt.user))
    return Agent(
        definition=definition,
        source_path=source_path,
        templates=templates,
        output_schema=output,
        result_schema=result,
        response_schema=to_json_schema(output.raw),
        config_version=config_digest(definition, output.raw),
    )


def config_digest(definition: AgentDefinition, output_schema: dict[str, Any]) -> str:
    source = orjson.dumps(
        {"definition": definition_document(definition), "output": output_schema}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(source).hexdigest()[:12]


def definition_document(definition: AgentDefinition) -> dict[str, Any]:
    """The definition as JSON data. Fields added later are left out while unset, so that a definition
    without them keeps the digest (and the version id) it had before they existed."""
    document = definition.model_dump(mode="json")
    for later in _LATER_FIELDS:
        if document.get(later) is None:
            document.pop(later, None)
    return document


def definition_from_document(document: object, where: str) -> AgentDefinition:
    """A definition from its parsed YAML or JSON document; ``where`` names it in errors."""
    if not isinstance(document, dict):
        raise AgentDefinitionError(where, ["the file must contain a YAML mapping of agent fields"])
    try:
        return AgentDefinition.model_validate(document)
    except ValidationError as exc:
        raise AgentDefinitionError(where, validation_problems(exc)) from exc


def parse_definition(path: Path) -> AgentDefinition:
    where = str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentDefinitionError(where, [f"cannot read file: {exc}"]) from exc
    except yaml.YAMLError as exc:
        raise AgentDefinitionError(where, [f"not valid YAML: {exc}"]) from exc
    return definition_from_document(document, where)


def load_agents(agents_dir: Path, catalogue: Catalogue, *, only: list[str] | None = None) -> list[Agent]:
    paths = sorted(p for p in agents_dir.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    if not paths:
        raise AgentDefinitionError(str(agents_dir), ["no agent definitions (*.yaml) found"])
    agents = [load_agent(path, catalogue) for path in paths]
    seen: dict[str, Path] = {}
    for agent in agents:
        if agent.name in seen:
            raise AgentDefinitionError(
                str(agent.source_path), [f"name: {agent.name!r} is already defined in {seen[agent.name]}"]
            )
        seen[agent.name] = agent.source_path
    if only:
        unknown = sorted(set(only) - seen.keys())
        if unknown:
            raise AgentDefinitionError(str(agents_dir), [f"no agent named {', '.join(unknown)}"])
        agents = [a for a in agents if a.name in only]
    return agents
