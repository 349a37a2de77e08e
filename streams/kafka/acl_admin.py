"""The ACL plan's edge (streams/contracts/acls.py): creating it through the admin API, and a process's
start-up check of its own grants. confluent-kafka's admin client, because aiokafka 0.14's has no ACL or
authorized-operations calls; it is built from the same ``ClientConfig`` as every other client."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType

from streams.contracts.acls import OPERATIONS, Grant, Operation, Principal, missing_grants
from streams.core.errors import KafkaAclMissing, KeelError
from streams.core.kafka_client import ClientConfig

log = logging.getLogger(__name__)


_NO_COORDINATOR = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
)


class AclSetupError(KeelError):
    reason = "acl_setup_failed"
    retriable = True


def admin_client(kafka: ClientConfig) -> AdminClient:
    return AdminClient({**kafka.confluent(), "client.id": "keel-acl"})


def binding(principal: Principal, grant: Grant) -> AclBinding:
    return AclBinding(
        ResourceType[grant.resource_type], grant.resource_name, ResourcePatternType[grant.pattern_type],
        principal.principal, "*", AclOperation[grant.operation], AclPermissionType.ALLOW,
    )  # fmt: skip


def existing_bindings(admin: AdminClient, principal: Principal, *, timeout_s: float) -> set[AclBinding]:
    wanted = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal.principal, None,  # type: ignore[arg-type]  # None: any
                              AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    try:
        return set(admin.describe_acls(wanted, request_timeout=timeout_s).result(timeout=timeout_s))
    except KafkaException as exc:
        raise AclSetupError(f"cannot read the ACLs of {principal.principal}: {exc.args[0]}") from exc


def apply_plan(kafka: ClientConfig, principals: Iterable[Principal], *, timeout_s: float = 30.0) -> tuple[int, int]:
    """Create every planned ACL that does not exist yet (ALTER on the cluster: the cluster admin's
    call). Idempotent; returns (created, already there). Bindings outside the plan are left alone."""
    admin = admin_client(kafka)
    created = existing = 0
    for principal in principals:
        have = existing_bindings(admin, principal, timeout_s=timeout_s)
        wanted = [binding(principal, grant) for grant in principal.grants]
        new = [b for b in wanted if b not in have]
        existing += len(wanted) - len(new)
        if not new:
            continue
        for acl, future in admin.create_acls(new, request_timeout=timeout_s).items():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as exc:
                raise AclSetupError(
                    f"creating {acl} failed: {exc.args[0]} (run `keel acl apply` as the cluster admin)"
                ) from exc
        created += len(new)
    return created, existing


def allowed_grants(kafka: ClientConfig, needed: Iterable[Grant], *, timeout_s: float) -> list[Grant] | None:
    """Of ``needed``, what the cluster says this client may do (its authorized operations on each
    topic and group); None when the cluster does not say."""
    needed = list(needed)
    admin = admin_client(kafka)
    topics = sorted({g.resource_name for g in needed if g.resource_type == "TOPIC"})
    groups = sorted({g.resource_name for g in needed if g.resource_type == "GROUP"})
    allowed: list[Grant] = []
    for name, future in admin.describe_topics(
        TopicCollection(topics), include_authorized_operations=True, request_timeout=timeout_s
    ).items():
        operations = _operations(future, timeout_s=timeout_s)
        if operations is None:
            return None
        allowed += [Grant("TOPIC", name, op) for op in operations]
    for name in groups:
        allowed += [Grant("GROUP", name, op) for op in _group_operations(admin, name, timeout_s=timeout_s)]
    return allowed


def _group_operations(admin: AdminClient, group: str, *, timeout_s: float) -> list[Operation]:
    """A group's authorized operations; while the cluster has no group coordinator yet (a fresh
    cluster's offsets topic is made on first use) it is asked again, then given the benefit of the doubt."""
    for _ in range(10):
        future = admin.describe_consumer_groups([group], include_authorized_operations=True, request_timeout=timeout_s)
        try:
            operations = _operations(future[group], timeout_s=timeout_s)
        except AclSetupError as exc:
            if not isinstance(exc.__cause__, KafkaException) or exc.__cause__.args[0].code() not in _NO_COORDINATOR:
                raise
            time.sleep(0.5)
            continue
        return list(OPERATIONS) if operations is None else operations
    log.warning("no group coordinator answered for %s: its ACLs are not checked", group)
    return list(OPERATIONS)


def _operations(future: object, *, timeout_s: float) -> list[Operation] | None:
    try:
        described = future.result(timeout=timeout_s)  # type: ignore[attr-defined]
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED):
            return []
        if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return list(OPERATIONS)  # not there yet: not an ACL's doing (``keel topics`` creates it)
        raise AclSetupError(f"cannot describe what this principal may do: {error.str()}") from exc
    operations = getattr(described, "authorized_operations", None)
    if operations is None:
        return None
    return [op.name for op in operations if op.name in OPERATIONS]


def check_grants(kafka: ClientConfig, needed: Iterable[Grant], *, what: str, timeout_s: float = 15.0) -> None:
    """At start-up: raise ``KafkaAclMissing`` naming every needed ACL this client lacks."""
    needed = list(needed)
    allowed = allowed_grants(kafka, needed, timeout_s=timeout_s)
    if allowed is None:
        log.info("the cluster does not report authorized operations; %s's ACLs are not checked", what)
        return
    missing = missing_grants(needed, allowed)
    if missing:
        named = [f"{g.operation} on {g.resource_type.lower()} {g.resource_name}" for g in missing]
        listed = "; ".join(named[:12]) + (f"; and {len(named) - 12} more" if len(named) > 12 else "")
        raise KafkaAclMissing(
            f"{what} as {kafka.describe()} lacks ACLs: {listed} (`keel acl plan` lists what each principal needs; "
            "`keel acl apply`, as the cluster admin, creates them)"
        )
