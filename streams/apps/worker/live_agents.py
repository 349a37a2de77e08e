"""The versions a worker runs: each agent's stable and canary versions from ``keel.agent-configs``,
switched while the worker runs (streams/agent/versions.py).

An agent with no labels on the topic runs as its file declares. A version is taken only when this
worker can run it as it is: the fields it reads once at start-up (``FIXED``) as the file has them,
every provider of its chain configured, and its output schema the catalogue's. Otherwise the labels
are refused (logged and counted) and the agent keeps running the versions it had. An event keeps the
version it was given when it started, whatever changes while it runs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from streams.agent.definition import Agent, compile_agent
from streams.agent.versions import AgentVersion, Labels, fixed_changes, routed_version
from streams.contracts.agent_configs import ConfigLog, Entry
from streams.core.catalogue import Catalogue, fingerprint
from streams.core.errors import AgentConfigRefused, AgentDefinitionError, ConfigVersionUnavailable

log = logging.getLogger(__name__)


class LiveAgents:
    """By agent name: what decides an event now (``pick``), following the topic (``take``)."""

    def __init__(
        self,
        agents: list[Agent],
        catalogue: Catalogue,
        *,
        providers: Mapping[str, object],
        adapt: Callable[[Agent], Agent] = lambda agent: agent,
    ) -> None:
        """``agents``: from the files, as the worker runs them; ``adapt``: what the worker does to every
        agent it compiles (a provider override)."""
        self._files = {agent.name: agent for agent in agents}
        self._catalogue, self._providers, self._adapt = catalogue, providers, adapt
        self._log = ConfigLog()
        self._compiled: dict[tuple[str, str], Agent] = {}
        self._live: dict[str, tuple[Labels, Agent, Agent | None]] = {}

    def pick(self, name: str, event_id: str) -> Agent:
        live = self._live.get(name)
        if live is None:
            return self._files[name]
        labels, stable, canary = live
        return canary if canary is not None and routed_version(labels, event_id) == labels.canary else stable

    def pinned(self, name: str, version_id: str) -> Agent:
        """Version ``version_id`` of agent ``name``. Raises ``ConfigVersionUnavailable``."""
        try:
            return self._compile(name, version_id)
        except AgentConfigRefused as exc:
            raise ConfigVersionUnavailable(f"the replay asks for {exc}") from exc

    def labels(self, name: str) -> Labels | None:
        live = self._live.get(name)
        return live[0] if live is not None else None

    def take(self, entry: Entry) -> None:
        """Raises ``AgentConfigRefused`` for labels this worker cannot run (it keeps what it had)."""
        self._log.apply(entry)
        if not isinstance(entry, Labels) or entry.agent not in self._files:
            return
        stable = self._compile(entry.agent, entry.stable)
        canary = self._compile(entry.agent, entry.canary) if entry.canary is not None else None
        self._live[entry.agent] = (entry, stable, canary)
        shown = f"stable {entry.stable}" + (f", canary {entry.canary} for {entry.canary_percent:g}%" if canary else "")
        log.info("agent %s now runs %s (%s by %s)", entry.agent, shown, entry.change, entry.author)

    def _compile(self, name: str, version_id: str) -> Agent:
        key = (name, version_id)
        if key not in self._compiled:
            agent = self._adapt(self._checked(self._log.version(name, version_id)))
            missing = sorted({s.provider for s in agent.definition.model_chain} - set(self._providers))
            if missing:
                unknown = ", ".join(missing)
                raise AgentConfigRefused(
                    f"version {version_id} of {name} uses providers not configured here: {unknown}"
                )
            self._compiled[key] = agent
        return self._compiled[key]

    def _checked(self, version: AgentVersion) -> Agent:
        fixed = fixed_changes(self._files[version.agent].definition, version.definition)
        if fixed:
            raise AgentConfigRefused(
                f"version {version.version_id} of {version.agent} changes {', '.join(fixed)}: "
                "change the agent's file and restart"
            )
        return compile_version(version, self._catalogue, source_path=self._files[version.agent].source_path)


def compile_version(version: AgentVersion, catalogue: Catalogue, *, source_path: Path) -> Agent:
    """``version`` as an agent to run (a worker's, `keel eval`'s): its output schema the catalogue's,
    its definition compiled. Raises ``AgentConfigRefused``."""
    where = f"version {version.version_id} of {version.agent}"
    output = catalogue.output_by_file(version.definition.output_schema)
    if output is None or output.fingerprint != fingerprint(version.output_schema):
        raise AgentConfigRefused(
            f"{where}: its output schema is not the catalogue's {version.definition.output_schema}"
        )
    try:
        return compile_agent(version.definition, catalogue, source_path=source_path)
    except AgentDefinitionError as exc:
        raise AgentConfigRefused(f"{where}: {exc}") from exc
