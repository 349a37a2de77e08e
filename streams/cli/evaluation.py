"""`keel eval NAME --candidate VERSION`: a deployed version measured against the stable one (or
``--baseline``) on the events the audit trail recorded (``--since``), a golden file or the approved
reviews (``--golden FILE|reviews``), through the worker's pipeline and the configured provider
(streams/eval/). It writes only usage records (purpose ``eval``) and the evaluation, on
``keel.agent-configs``; it exits 1 when the candidate fails the agent's ``evaluation`` thresholds."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from streams.agent.definition import Agent
from streams.agent.versions import AgentVersion, Change, version_of
from streams.apps.registry.client_mode import load_schemas
from streams.apps.wiring import adapted, build_deps, priced
from streams.apps.worker.live_agents import compile_version
from streams.cli.publish import to_request
from streams.cli.sign_in import add_arguments as add_user_arguments
from streams.cli.sign_in import signed_in
from streams.contracts.agent_configs import ConfigLog, eval_record
from streams.contracts.emit import Emitter
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import agent_topics
from streams.core.catalogue import Catalogue
from streams.core.errors import AgentConfigRefused, EvalInputError
from streams.core.settings import Settings
from streams.eval.inputs import EvalInput, audit_inputs, duration_ms, golden_input, latest_last, review_inputs
from streams.eval.report import Report, Side, as_json, judged, text
from streams.eval.run import Contender, run_all
from streams.eval.scores import score
from streams.eval.thresholds import strictest
from streams.kafka.agent_configs import publish_configs, read_config_log
from streams.kafka.connection import client_config
from streams.kafka.eval_inputs import read_audit, read_reviews
from streams.kafka.producer import RecordProducer
from streams.kafka.skipped import SkippedRecords


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("eval", help="measure a deployed version against the stable one before promoting it")
    parser.add_argument("name")
    parser.add_argument("--candidate", required=True, metavar="VERSION", help="a deployed version (or id prefix)")
    parser.add_argument("--baseline", metavar="VERSION", help="default: the stable version, or the agent's file")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--since", default=None, help="the events audited in the last 30m, 24h, 7d (default 24h)")
    inputs.add_argument("--golden", metavar="FILE", help="a JSONL file of {event, expected}, or `reviews`")
    parser.add_argument("--limit", type=int, default=None, help="the latest N inputs only")
    parser.add_argument("--concurrency", type=int, default=4, help="events in the pipeline at once")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--message", "-m", default="", help="kept with the evaluation")
    add_user_arguments(parser)
    parser.set_defaults(command=eval_command)


def eval_command(args: argparse.Namespace, settings: Settings) -> int:
    report = asyncio.run(evaluate(args, settings, author=signed_in(args, settings, args.name)))
    print(as_json(report) if args.format == "json" else text(report))
    return 0 if report.evaluation.passed else 1


@dataclass(frozen=True, slots=True)
class Inputs:
    label: str  # since <duration> | golden <file> | reviews
    agreement_with: str
    items: list[EvalInput]


async def evaluate(args: argparse.Namespace, settings: Settings, *, author: str) -> Report:
    catalogue, files = load_schemas(settings)
    kafka = client_config(settings)
    log = await read_config_log(kafka, catalogue, settings)
    change = Change(author, int(time.time() * 1000), args.message)
    baseline, candidate = _versions(log, args.name, files, change, baseline=args.baseline, candidate=args.candidate)
    file_agent = next(agent for agent in files if agent.name == args.name)
    contenders = [_contender(role, version, catalogue, settings, file_agent)
                  for role, version in (("baseline", baseline), ("candidate", candidate))]  # fmt: skip
    inputs = await _inputs(args, settings, catalogue, file_agent)
    agents = [c.agent for c in contenders]
    deps = build_deps(settings, catalogue, agents)
    emitter = Emitter(catalogue, settings, agents[:1], pricing=priced(settings, agents))
    run_id = uuid.uuid4().hex[:12]
    try:
        async with RecordProducer(kafka) as producer:

            async def sink(records: Sequence[OutRecord]) -> None:
                await producer.send_all(records)

            runs = await run_all(inputs.items, contenders, deps, emitter, run_id=run_id,
                                 concurrency=args.concurrency, sink=sink)  # fmt: skip
    finally:
        for client in deps.models.values():
            await client.aclose()
    fields = [field["name"] for field in file_agent.output_schema.raw["fields"]]
    expected = [item.expected for item in inputs.items]
    base, cand = (Side(c.version_id, c.agent.config_version, score(fields, runs[c.role], expected)) for c in contenders)
    policy = strictest(baseline.definition.evaluation, candidate.definition.evaluation)
    report = judged(base, cand, agent=args.name, inputs=inputs.label, run_id=run_id, policy=policy, change=change,
                    agreement_with=inputs.agreement_with)  # fmt: skip
    await publish_configs(kafka, [eval_record(catalogue, settings, report.evaluation)])
    return report


def _versions(
    log: ConfigLog, name: str, files: list[Agent], change: Change, *, baseline: str | None, candidate: str
) -> tuple[AgentVersion, AgentVersion]:
    """The baseline (the stable version by default; with no labels yet, the agent's file) and the candidate."""
    if name not in {agent.name for agent in files}:
        raise AgentConfigRefused(f"no agent {name!r} in the agents folder: `keel eval` runs the workers' agents")
    labels = log.labels.get(name)
    if baseline is not None:
        base = log.version(name, baseline)
    elif labels is not None:
        base = log.version(name, labels.stable)
    else:
        base = version_of(next(agent for agent in files if agent.name == name), parent=None, change=change)
    return base, log.version(name, candidate)


def _contender(role: str, version: AgentVersion, catalogue: Catalogue, settings: Settings, file: Agent) -> Contender:
    """The version compiled as the worker compiles it, with the worker's provider override."""
    source = Path(version.source) if version.source else file.source_path
    agent = compile_version(version, catalogue, source_path=source)
    return Contender(role, version.version_id, adapted(settings)(agent))


async def _inputs(args: argparse.Namespace, settings: Settings, catalogue: Catalogue, agent: Agent) -> Inputs:
    kafka, skipped = client_config(settings), SkippedRecords()
    if args.golden == "reviews":
        review_topic = agent_topics(agent, settings).review
        items, decisions = await read_reviews(kafka, catalogue, settings, review_topic=review_topic, skipped=skipped)
        found = review_inputs(items, decisions, catalogue, agent=agent.name,
                              max_event_bytes=settings.max_event_bytes, limit=args.limit)  # fmt: skip
        inputs = Inputs("reviews", "approved output", found)
    elif args.golden is not None:
        inputs = Inputs(f"golden {args.golden}", "expected output", latest_last(read_golden(Path(args.golden)),
                                                                               args.limit))  # fmt: skip
    else:
        since = args.since or "24h"
        since_ms = int(time.time() * 1000) - duration_ms(since)
        audited = await read_audit(kafka, catalogue, settings, since_ms=since_ms, skipped=skipped)
        found = audit_inputs(audited, agent=agent.name, since_ms=since_ms, limit=args.limit)
        inputs = Inputs(f"since {since}", "recorded output", found)
    if not inputs.items:
        raise EvalInputError(f"{agent.name}: no inputs to evaluate on ({inputs.label})")
    return inputs


def read_golden(path: Path) -> list[EvalInput]:
    """A golden file: one ``{"event": <a sample envelope, as deploy/samples have them>, "expected":
    <the output>}`` per line; an event without ``event_id`` gets ``golden-<line>``."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise EvalInputError(f"cannot read the golden file {path}: {exc}") from exc
    inputs: list[EvalInput] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = orjson.loads(line)
            sample = document.get("event") if isinstance(document, dict) else None
            event = to_request(sample, event_id=sample.get("event_id") or f"golden-{number}") if sample else None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EvalInputError(f"{path} line {number}: not a golden line ({exc})") from exc
        inputs.append(golden_input(document, line=number, event=event))
    return inputs
