"""`keel agent deploy|versions|show|diff|history|promote|rollback`: agent versions on
``keel.agent-configs`` (streams/agent/versions.py). Deploying publishes a version without making it
live; promote and rollback move the ``stable`` and ``canary`` labels, which every worker follows
without a restart. Changes are made as a user who may configure the agent (streams/cli/sign_in.py);
reading needs only read access to the topic."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from streams.agent.definition import Agent, load_agent, load_agents
from streams.agent.versions import (
    AgentVersion,
    Change,
    Labels,
    diff,
    fixed_changes,
    promoted,
    rolled_back,
    sections,
    version_of,
)
from streams.apps.registry.compat import backward_problems
from streams.cli.sign_in import add_arguments as add_user_arguments
from streams.cli.sign_in import signed_in
from streams.contracts.agent_configs import ConfigLog, labels_records, version_record
from streams.contracts.out_record import OutRecord
from streams.core.catalogue import Catalogue, load_catalogue
from streams.core.errors import AgentConfigRefused
from streams.core.settings import Settings
from streams.kafka.agent_configs import publish_configs, read_config_log
from streams.kafka.connection import client_config


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = sub.add_parser("agent", help="agent versions: deploy, versions, show, diff, history, promote, rollback")
    actions = agent.add_subparsers(dest="action", required=True)
    deploy = actions.add_parser("deploy", help="publish a new version from a file (it is not live until promoted)")
    deploy.add_argument("file", type=Path)
    versions = actions.add_parser("versions", help="an agent's versions, oldest first, with their labels")
    versions.add_argument("name")
    show = actions.add_parser("show", help="a version (default: the stable one) as YAML")
    show.add_argument("name")
    show.add_argument("version", nargs="?")
    compare = actions.add_parser("diff", help="what changed between two versions: prompt, chain, schema, policy")
    compare.add_argument("name")
    compare.add_argument("old")
    compare.add_argument("new")
    history = actions.add_parser("history", help="every change of the agent's versions and labels: who, what, why")
    history.add_argument("name")
    promote = actions.add_parser("promote", help="make a version stable, or the canary for a share of events")
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument("--canary", type=float, metavar="PERCENT", help="the share of events the canary decides")
    promote.add_argument(
        "--require-eval", action="store_true", help="refuse unless the version's latest `keel eval` passed"
    )
    rollback = actions.add_parser("rollback", help="end the canary, or go back to the previous stable version")
    rollback.add_argument("name")
    rollback.add_argument("--to", metavar="VERSION", help="the stable version to go back to")
    for parser in (deploy, promote, rollback):
        parser.add_argument("--message", "-m", default="", help="why (kept with the change)")
        add_user_arguments(parser)
    agent.set_defaults(command=agent_command)


def agent_command(args: argparse.Namespace, settings: Settings) -> int:
    catalogue = load_catalogue(settings.schemas_dir)
    new = load_agent(args.file, catalogue) if args.action == "deploy" else None
    if args.action in ("deploy", "promote", "rollback"):
        author = signed_in(args, settings, new.name if new is not None else args.name)
        change = Change(author, int(time.time() * 1000), args.message)
    log = asyncio.run(read_config_log(client_config(settings), catalogue, settings))
    if new is not None:
        records = deploy(settings, catalogue, log, new, change)
    elif args.action == "promote":
        version = log.version(args.name, args.version).version_id
        if args.require_eval:
            print(require_eval(log, args.name, version))
        records = _labels(settings, catalogue, promoted(log.labels.get(args.name), args.name, version, change,
                                                        canary_percent=args.canary))  # fmt: skip
    elif args.action == "rollback":
        to = log.version(args.name, args.to).version_id if args.to else None
        records = _labels(settings, catalogue, rolled_back(log.labels.get(args.name), args.name, change, to=to))
    else:
        print(report(log, args))
        return 0
    asyncio.run(publish_configs(client_config(settings), records))
    return 0


def require_eval(log: ConfigLog, name: str, version: str) -> str:
    """What the latest evaluation of ``version`` says, when it passed. Raises ``AgentConfigRefused``."""
    evaluation = log.evaluations.get((name, version))
    if evaluation is None:
        raise AgentConfigRefused(
            f"{name} {version} has not been evaluated: run `keel eval {name} --candidate {version}` first"
        )
    when = f"{evaluation.inputs}, against {evaluation.baseline}, at {_when(evaluation.at_ms)} UTC"
    if not evaluation.passed:
        raise AgentConfigRefused(
            f"{name} {version} failed its latest evaluation ({when}): {'; '.join(evaluation.reasons)}"
        )
    return f"{name}: {version} passed its latest evaluation ({when}, run {evaluation.run_id})"


def _labels(settings: Settings, catalogue: Catalogue, labels: Labels) -> list[OutRecord]:
    print(f"{labels.agent}: {labels.change}: {live(labels)}")
    return labels_records(catalogue, settings, labels)


def live(labels: Labels) -> str:
    canary = f", canary {labels.canary} for {labels.canary_percent:g}% of events" if labels.canary else ""
    return f"stable {labels.stable}{canary}"


def deploy(settings: Settings, catalogue: Catalogue, log: ConfigLog, new: Agent, change: Change) -> list[OutRecord]:
    """The records that publish ``new`` as a new version over the stable one. An agent's first deploy
    also publishes its file in the agents folder as its first stable version (what workers run until then)."""
    path = new.source_path
    unknown = sorted({s.provider for s in new.definition.model_chain} - settings.provider_endpoints().keys())
    if unknown:
        raise AgentConfigRefused(f"{path}: model_chain uses providers that are not configured: {', '.join(unknown)}")
    records: list[OutRecord] = []
    labels = log.labels.get(new.name)
    if labels is None:
        first = version_of(_file_agent(settings, catalogue, new.name), parent=None, change=change)
        records.append(version_record(catalogue, settings, first))
        labels = promoted(None, new.name, first.version_id, change, canary_percent=None)
        records += labels_records(catalogue, settings, labels)
        print(f"{new.name}: its file {first.source} is its first version, {first.version_id}, stable")
        base = first
    else:
        base = log.version(new.name, labels.stable)
    if new.config_version == base.version_id or new.config_version in log.versions.get(new.name, {}):
        print(f"{new.name}: {new.config_version} is deployed already")
        return records
    _check_replaces(new, base)
    version = version_of(new, parent=base.version_id, change=change)
    print(f"{new.name}: deployed {version.version_id} (over stable {base.version_id}); not live until "
          f"`keel agent promote {new.name} {version.version_id}` (add --canary PERCENT for a canary)")  # fmt: skip
    return [*records, version_record(catalogue, settings, version)]


def _file_agent(settings: Settings, catalogue: Catalogue, name: str) -> Agent:
    agents = {agent.name: agent for agent in load_agents(settings.agents_dir, catalogue)}
    if name not in agents:
        raise AgentConfigRefused(
            f"no agent {name!r} in {settings.agents_dir}: workers start from an agent's file there"
        )
    return agents[name]


def _check_replaces(new: Agent, base: AgentVersion) -> None:
    fixed = fixed_changes(base.definition, new.definition)
    if fixed:
        raise AgentConfigRefused(
            f"{new.source_path} changes {', '.join(fixed)}, which workers read at start-up: change the agent's file "
            "in the agents folder and restart the workers instead"
        )
    problems = backward_problems(new.output_schema.raw, base.output_schema)
    if problems:
        raise AgentConfigRefused(
            f"{new.source_path}: the output schema cannot read what {base.version_id} wrote: {'; '.join(problems)}"
        )


def report(log: ConfigLog, args: argparse.Namespace) -> str:
    name, labels = args.name, log.labels.get(args.name)
    if args.action == "versions":
        return versions_table(log, name)
    if args.action == "history":
        return history_table(log, name)
    if labels is None and not getattr(args, "version", None):
        raise AgentConfigRefused(f"{name} has no versions on the topic yet: workers run its file")
    if args.action == "show":
        version = log.version(name, args.version or (labels.stable if labels else ""))
        header = {"agent": name, "version": version.version_id, "parent": version.parent, "author": version.author,
                  "at": _when(version.at_ms), "message": version.message, "source": version.source}  # fmt: skip
        body = [f"# {s.name}\n{s.text}" for s in sections(version)]
        return "\n".join([yaml.safe_dump(header, sort_keys=False), *body])
    return diff(log.version(name, args.old), log.version(name, args.new)) or "(no difference)"


def versions_table(log: ConfigLog, name: str) -> str:
    history, labels = log.history(name), log.labels.get(name)
    if not history:
        return f"{name}: no versions on the topic yet; workers run its file (keel agent deploy FILE)"
    lines = [f"{'VERSION':<13} {'LABEL':<14} {'DEPLOYED (UTC)':<20} {'AUTHOR':<16} MESSAGE"]
    for version in history:
        label = ""
        if labels is not None and version.version_id == labels.stable:
            label = "stable"
        elif labels is not None and version.version_id == labels.canary:
            label = f"canary {labels.canary_percent:g}%"
        lines.append(f"{version.version_id:<13} {label:<14} {_when(version.at_ms):<20} {version.author[:16]:<16} "
                     f"{version.message}")  # fmt: skip
    if labels is not None:
        lines.append(f"labels: {labels.change} by {labels.author} at {_when(labels.at_ms)} {labels.message}".rstrip())
    return "\n".join(lines)


def _when(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def history_table(log: ConfigLog, name: str) -> str:
    """The agent's configuration audit trail, oldest first: each deploy (a version, over its parent)
    and each labels change, with who made it and why."""
    rows = []
    for labels in log.changes.get(name, []):  # first: an agent's first deploy makes its file stable, then deploys
        before = f"stable {labels.previous_stable}" if labels.previous_stable else "its file"
        if labels.previous_canary:
            before += f", canary {labels.previous_canary}"
        rows.append((labels.at_ms, labels.author, labels.change, f"{before} -> {live(labels)}", labels.message))
    rows += [(v.at_ms, v.author, "deploy", f"{v.parent} -> {v.version_id} (not live)", v.message)
             for v in log.history(name) if v.parent is not None]  # fmt: skip
    if not rows:
        return f"{name}: no changes on the topic yet; workers run its file (keel agent deploy FILE)"
    lines = [f"{'AT (UTC)':<20} {'WHO':<16} {'CHANGE':<16} {'FROM -> TO':<60} WHY"]
    lines += [f"{_when(at):<20} {who[:16]:<16} {what:<16} {moved:<60} {why}".rstrip()
              for at, who, what, moved, why in sorted(rows, key=lambda row: row[0])]  # fmt: skip
    return "\n".join(lines)
