"""`keel acl plan|apply`: the least-privilege ACLs of every Keel principal (streams/contracts/acls.py)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

import yaml

from streams.agent.definition import Agent, load_agents
from streams.contracts.acl_formats import plan_lines, strimzi_users
from streams.contracts.acls import acl_plan
from streams.core.catalogue import load_catalogue
from streams.core.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acl = sub.add_parser("acl", help="least-privilege ACLs per principal: plan (print) or apply (create, idempotent)")
    acl.add_argument("action", choices=["plan", "apply"])
    acl.add_argument("--format", choices=["text", "json", "strimzi"], default="text", help="plan: how to print it")
    acl.add_argument("--strimzi-cluster", default="my-cluster", help="strimzi: the Kafka cluster's name (its label)")
    acl.add_argument(
        "--strimzi-authentication", choices=["scram-sha-512", "tls", "tls-external"], default="scram-sha-512"
    )
    # plan reads files only; apply checks the connection itself (as the cluster admin, not a Keel principal)
    acl.set_defaults(command=acl_command, checks_access=False)


def planned_agents(settings: Settings) -> list[Agent]:
    agents = load_agents(settings.agents_dir, load_catalogue(settings.schemas_dir))
    return [agent for agent in agents if not settings.agents or agent.name in settings.agents]


def acl_command(args: argparse.Namespace, settings: Settings) -> int:
    principals = acl_plan(planned_agents(settings), settings)
    if args.action == "apply":
        from streams.cli.main import check_kafka_access  # noqa: PLC0415
        from streams.kafka.acl_admin import apply_plan  # noqa: PLC0415
        from streams.kafka.connection import client_config  # noqa: PLC0415

        check_kafka_access(settings)
        created, existing = apply_plan(client_config(settings), principals)
        print(f"ACLs for {len(principals)} principal(s): {created} created, {existing} already there")
        return 0
    if args.format == "json":
        print(json.dumps([asdict(p) for p in principals], indent=2))
    elif args.format == "strimzi":
        users = strimzi_users(principals, cluster=args.strimzi_cluster, authentication=args.strimzi_authentication)
        print(yaml.safe_dump_all(users, sort_keys=False), end="")
    else:
        print("\n".join(plan_lines(principals)))
    return 0
