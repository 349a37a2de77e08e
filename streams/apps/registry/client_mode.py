"""Client mode: with ``KEEL_SCHEMA_REGISTRY_URL`` set, the catalogue takes the registry's ids.

At start-up, for every topic Keel encodes (streams/contracts/registry_subjects.py): refuse to start when
the schema Keel writes is not backward compatible with the subject's latest version, then register it
and keep the id the registry answers. Encoding then writes those ids with no registry work; decoding
reads any other id through the registry once, with the catalogue's parsed schema when the canonical
forms match. Without a registry, ``load_schemas`` is the embedded catalogue, exactly as before.
"""

from __future__ import annotations

import logging

from connectors.registry.client import RegistryClient, registry_url, shown
from streams.agent.definition import Agent, load_agents
from streams.contracts.registry_subjects import TopicSubject, topic_subjects
from streams.core.catalogue import Catalogue, CatalogueSchema, load_catalogue
from streams.core.errors import IncompatibleSchema
from streams.core.settings import Settings

log = logging.getLogger(__name__)


def load_schemas(settings: Settings, *, client: RegistryClient | None = None) -> tuple[Catalogue, list[Agent]]:
    """The catalogue and the configured agents, with the registry's ids when one is configured."""
    catalogue = load_catalogue(settings.schemas_dir)
    agents = load_agents(settings.agents_dir, catalogue, only=settings.agents or None)
    if not registry_url(settings) and client is None:
        return catalogue, agents
    registered = register_schemas(settings, catalogue, agents, client or RegistryClient(settings))
    return registered, load_agents(settings.agents_dir, registered, only=settings.agents or None)


def register_schemas(
    settings: Settings, catalogue: Catalogue, agents: list[Agent], client: RegistryClient
) -> Catalogue:
    plan = [item for item in topic_subjects(catalogue, agents, settings) if item.encoded]
    for item in plan:
        if not client.compatible(item.subject, item.latest.raw):
            raise IncompatibleSchema(_incompatible(item, client.latest_id(item.subject), agents))
    ids: dict[int, int] = {}
    for item in plan:
        registry_id = client.register(item.subject, item.latest.raw)
        first = ids.setdefault(item.latest.id, registry_id)
        if first != registry_id:
            log.warning("%s: the registry gave id %d for the schema it gave %d elsewhere; Keel writes %d",
                        item.subject, registry_id, first, first)  # fmt: skip
    resolver = _Resolver(client)
    registered = catalogue.with_registry_ids(ids, resolver)
    resolver.catalogue = registered
    log.info("schema registry %s: %d subjects registered, ids %s", shown(registry_url(settings)),
             len(plan), ", ".join(f"{old}->{new}" for old, new in sorted(ids.items())))  # fmt: skip
    return registered


class _Resolver:
    """Reads an id Keel has not met through the registry (``Catalogue.by_id`` keeps what it returns)."""

    def __init__(self, client: RegistryClient) -> None:
        self._client = client
        self.catalogue: Catalogue | None = None

    def __call__(self, schema_id: int) -> CatalogueSchema | None:
        raw = self._client.fetch(schema_id)
        if raw is None or self.catalogue is None:
            return None
        return self.catalogue.adopt(schema_id, raw)


def _incompatible(item: TopicSubject, latest_id: int | None, agents: list[Agent]) -> str:
    latest = f" (id {latest_id})" if latest_id is not None else ""
    what = f"the schema Keel writes to {item.topic}"
    agent = next((a for a in agents if a.name == item.agent), None)
    if agent is not None:
        what = (f"agent {agent.name}'s result schema (output_schema {agent.definition.output_schema}, "
                f"in {agent.source_path})")  # fmt: skip
    return (
        f"{what} is not backward compatible with the latest version{latest} of subject {item.subject} in the "
        "Schema Registry: consumers could not read what is already on the topic with it. Make the change "
        "compatible (new fields need defaults; do not remove or retype fields without one), or write to new "
        "topics under a new agent name"
    )
