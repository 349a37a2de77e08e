"""The ACL plan (streams/contracts/acls.py) as `keel acl plan` prints it: a table, or Strimzi
``KafkaUser`` resources (kafka.strimzi.io/v1beta2, simple authorization) to apply with kubectl."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from streams.contracts.acls import Grant, Principal

_STRIMZI_TYPES = {"TOPIC": "topic", "GROUP": "group", "CLUSTER": "cluster", "TRANSACTIONAL_ID": "transactionalId"}
_STRIMZI_PATTERNS = {"LITERAL": "literal", "PREFIXED": "prefix"}


def plan_lines(principals: list[Principal]) -> list[str]:
    lines: list[str] = []
    for principal in principals:
        lines.append(f"{principal.principal}  ({principal.process})")
        for (kind, name, pattern), grants in groupby(principal.grants, key=_resource):
            operations = ", ".join(sorted(g.operation for g in grants))
            suffix = "" if pattern == "LITERAL" else f" ({pattern.lower()})"
            lines.append(f"  {kind.lower():<6} {name}{suffix}: {operations}")
    return lines


def strimzi_users(
    principals: list[Principal], *, cluster: str, authentication: str = "scram-sha-512"
) -> list[dict[str, Any]]:
    """One ``KafkaUser`` per principal; its name is the user name (Strimzi's principal ``User:<name>``)."""
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaUser",
            "metadata": {"name": principal.name, "labels": {"strimzi.io/cluster": cluster}},
            "spec": {
                "authentication": {"type": authentication},
                "authorization": {"type": "simple", "acls": _strimzi_acls(principal.grants)},
            },
        }
        for principal in principals
    ]


def _resource(grant: Grant) -> tuple[str, str, str]:
    return grant.resource_type, grant.resource_name, grant.pattern_type


def _strimzi_acls(grants: tuple[Grant, ...]) -> list[dict[str, Any]]:
    acls = []
    for (kind, name, pattern), same in groupby(sorted(grants), key=_resource):
        resource: dict[str, str] = {"type": _STRIMZI_TYPES[kind]}
        if kind != "CLUSTER":
            resource |= {"name": name, "patternType": _STRIMZI_PATTERNS[pattern]}
        operations = sorted(g.operation.capitalize() for g in same)
        acls.append({"resource": resource, "operations": operations, "host": "*"})
    return acls
