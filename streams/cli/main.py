"""The `keel` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable

from aiokafka.errors import KafkaConnectionError

from streams.cli import acl, agent, evaluation
from streams.cli.alerts import alerts_command
from streams.core.errors import ConfigError, KeelError
from streams.core.settings import Settings
from streams.kafka.connection import check_access, client_config


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["kafka"]:
        from connectors.local import kafka_cli  # noqa: PLC0415  (only the kafka command needs it)

        return int(kafka_cli.main(args[1:]))
    if args[:1] == ["model"]:
        from connectors.local import llama_local  # noqa: PLC0415

        return llama_local.main(args[1:])
    if args[:2] == ["review", "user"]:
        from streams.cli.review_users import main as review_users  # noqa: PLC0415

        return review_users(args[2:], Settings())
    parser = _parser()
    parsed = parser.parse_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    command: Callable[[argparse.Namespace, Settings], int] = parsed.command
    try:
        settings = Settings()
        if getattr(parsed, "checks_access", True):
            check_kafka_access(settings)
        return command(parsed, settings)
    except ConfigError as exc:
        print(f"keel: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeelError as exc:
        print(f"keel: {exc}", file=sys.stderr)
        return 1
    except KafkaConnectionError as exc:
        print(f"keel: cannot reach Kafka ({exc}); is it running? (local: `keel kafka start`)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def check_kafka_access(settings: Settings) -> None:
    """Before a command's clients start retrying: a refused password or certificate is one error
    here, naming the setting (streams/kafka/connection.py)."""
    asyncio.run(check_access(client_config(settings), timeout_s=settings.kafka_connect_check_s))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keel", description="Run AI agents reliably on Kafka.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    sub.add_parser("kafka", help="start|status|stop the local Kafka broker (see `keel kafka --help`)")
    sub.add_parser("model", help="start|status|stop the local llama.cpp model server (see `keel model --help`)")

    worker = sub.add_parser("worker", help="run the faust worker for the configured agents")
    worker.set_defaults(command=_worker)

    aggregate = sub.add_parser("aggregate", help="run the usage aggregation stream (windowed cost and latency)")
    aggregate.set_defaults(command=_aggregate)

    topics = sub.add_parser("topics", help="create every topic Keel uses (idempotent)")
    topics.set_defaults(command=_topics)

    publish = sub.add_parser("publish", help="publish sample events for an agent")
    publish.add_argument("--agent", required=True)
    publish.add_argument("--events", type=int, default=10)
    publish.set_defaults(command=_publish)

    dlq = sub.add_parser("dlq", help="inspect and replay dead letters")
    dlq.add_argument("action", choices=["list", "show", "replay"])
    dlq.add_argument("event_ids", nargs="*", help="event ids (show: one; replay: these only)")
    dlq.add_argument("--agent")
    dlq.add_argument("--reason", help="a reason code, e.g. output_schema_violation")
    dlq.add_argument("--since", help="30m, 2h, 7d, or an ISO-8601 time")
    dlq.add_argument("--limit", type=int, default=50)
    dlq.add_argument("--dry-run", action="store_true", help="replay: only list what would be replayed")
    dlq.add_argument("--config-version", help="replay: decide them with this version of --agent, not the live one")
    dlq.set_defaults(command=_dlq)

    alerts = sub.add_parser("alerts", help="recent alerts (list), or send keel.alerts to Slack and a webhook (relay)")
    alerts.add_argument("action", nargs="?", choices=["list", "relay"], default="list")
    alerts.add_argument("--open", action="store_true", help="list: only the incidents still firing")
    alerts.add_argument("--limit", type=int, default=50, help="list: the latest N")
    alerts.set_defaults(command=alerts_command)

    usage = sub.add_parser("usage", help="calls, tokens, cost and latency per window, from the aggregation stream")
    usage.add_argument("--by", choices=["agent", "model", "tenant", "kind"], default="agent")
    usage.add_argument("--period", choices=["minute", "hour"], default="hour")
    usage.add_argument("--limit", type=int, default=24, help="rows, latest windows first")
    usage.set_defaults(command=_usage)

    budget = sub.add_parser("budget", help="budgets: status, or raise a limit (parked events then resume)")
    budget.add_argument("action", choices=["status", "raise"])
    budget.add_argument("scope", nargs="?", help="raise: agent:<name> or tenant:<tenant>")
    budget.add_argument("--period", choices=["day", "month"], default="day", help="raise: this day's or month's")
    budget.add_argument("--usd", type=float, help="raise: the new USD limit")
    budget.add_argument("--tokens", type=int, help="raise: the new token limit")
    budget.set_defaults(command=_budget)

    _add_services(sub)
    acl.add_parser(sub)
    agent.add_parser(sub)
    evaluation.add_parser(sub)
    _add_demo_parsers(sub)
    return parser


def _add_demo_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text in (
        ("demo", "run the whole path bounded and non-interactively; last line is a JSON summary"),
        ("run", "the `make run` flow: start everything, publish samples, show outcomes live"),
    ):
        demo = sub.add_parser(name, help=help_text)
        demo.add_argument("--events", type=int, default=40 if name == "run" else 100, help="events in total")
        demo.add_argument("--provider", choices=["sim", "local"], default="local" if name == "run" else "sim")
        demo.add_argument("--timeout-s", type=float, default=900.0)
        if name == "demo":
            demo.add_argument(
                "--scenario", choices=["outcomes", "budget"], default="outcomes", help="budget: past a hard budget"
            )
        # checks once the local broker runs: it may start it (streams/cli/demo.py)
        demo.set_defaults(command=_demo, live=name == "run", checks_access=False)


def _add_services(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that serve HTTP: the review service and the schema registry API."""
    review = sub.add_parser(
        "review", help="the human review queue: serve its web UI, API and decision applier; stats: measured handoff"
    )
    review.add_argument("action", choices=["serve", "stats"])
    review.set_defaults(command=_review)

    registry = sub.add_parser(
        "registry", help="serve: the schema catalogue over the Confluent Schema Registry REST API (read-only)"
    )
    registry.add_argument("action", choices=["serve"])
    registry.set_defaults(command=_registry, checks_access=False)  # serves the catalogue: no Kafka

    ingest = sub.add_parser("ingest", help="serve: signed webhooks of the declared sources to the agents' input topics")
    ingest.add_argument("action", choices=["serve"])
    ingest.set_defaults(command=_ingest, checks_access=False)


def _worker(_args: argparse.Namespace, settings: Settings) -> int:
    from streams.apps.worker.shell import run_worker  # noqa: PLC0415  (faust is slow to import)

    run_worker(settings)


def _aggregate(_args: argparse.Namespace, settings: Settings) -> int:
    from streams.apps.aggregator.usage_stream import run_aggregator  # noqa: PLC0415  (faust is slow to import)

    run_aggregator(settings)


def _topics(_args: argparse.Namespace, settings: Settings) -> int:
    from streams.apps.wiring import load_runtime  # noqa: PLC0415
    from streams.contracts.topics import topic_plan  # noqa: PLC0415
    from streams.kafka.admin import ensure_topics  # noqa: PLC0415

    runtime = load_runtime(settings, tools=False)
    created = asyncio.run(ensure_topics(client_config(settings), topic_plan(runtime.agents, settings)))
    print(f"created {len(created)} topic(s): {', '.join(created) or '-'}")
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli.demo import publish_samples  # noqa: PLC0415

    ids = asyncio.run(publish_samples(settings, args.agent, args.events))
    print(f"published {len(ids)} event(s) for {args.agent}")
    return 0


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime  # noqa: PLC0415

    from streams.agent.definition import load_agents  # noqa: PLC0415
    from streams.cli import dlq  # noqa: PLC0415
    from streams.contracts.topics import agent_topics  # noqa: PLC0415
    from streams.core.catalogue import load_catalogue  # noqa: PLC0415

    agents = load_agents(settings.agents_dir, load_catalogue(settings.schemas_dir))
    names = [a.name for a in agents if args.agent in (None, a.name)]
    since = dlq.parse_since(args.since, now=datetime.now(UTC))
    selection = dlq.Selection(args.agent, args.reason, since, frozenset(args.event_ids))
    chosen = dlq.select(asyncio.run(dlq.read_dead_letters(settings, names)), selection)
    if args.action == "show":
        for dead in chosen[-1:] if args.event_ids else []:
            print(dlq.as_json(dead))
        return 0 if chosen and args.event_ids else 1
    if args.action == "list" or args.dry_run:
        for dead in chosen[-args.limit :]:
            print(dlq.describe(dead))
        print(f"{len(chosen)} dead letter(s)" + (" would be replayed" if args.dry_run else ""))
        return 0
    inputs = {agent_topics(a, settings).input for a in agents}
    version = dlq.pinned_version(settings, args.agent, args.config_version) if args.config_version else None
    replayed = asyncio.run(dlq.replay(settings, chosen, input_topics=inputs, config_version=version))
    print(f"replayed {replayed} of {len(chosen)} dead letter(s)" + (f" with version {version}" if version else ""))
    return 0


def _usage(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli import usage_report  # noqa: PLC0415

    spec = usage_report.PERIODS[args.period]
    rows = asyncio.run(usage_report.read_windows(settings, spec, dimension=args.by))
    print(usage_report.format_rows(rows, period=args.period, limit=args.limit))
    return 0


def _budget(args: argparse.Namespace, settings: Settings) -> int:
    from streams.apps.wiring import load_runtime  # noqa: PLC0415
    from streams.cli import budget_report  # noqa: PLC0415

    if args.action == "status":
        ledgers = asyncio.run(budget_report.read_ledgers(settings))
        rows = budget_report.status_rows(
            ledgers, load_runtime(settings, tools=False).budgets, now_ms=int(time.time() * 1000)
        )
        print(budget_report.format_status(rows))
        return 0
    if args.scope is None or (args.usd is None and args.tokens is None):
        print("keel budget raise: give a scope and --usd and/or --tokens", file=sys.stderr)
        return 2
    kind = args.period
    decision = asyncio.run(
        budget_report.raise_budget(settings, args.scope, kind=kind, usd=args.usd, tokens=args.tokens)
    )
    print(f"{args.scope}: this {kind}'s budget raised" if decision.granted else f"{args.scope}: refused")
    return 0 if decision.granted else 1


def _review(args: argparse.Namespace, settings: Settings) -> int:
    from streams.apps.review.shell import serve  # noqa: PLC0415
    from streams.cli.review import review_stats  # noqa: PLC0415

    if args.action == "stats":
        print(asyncio.run(review_stats(settings)))
        return 0
    asyncio.run(serve(settings))
    return 0


def _registry(_args: argparse.Namespace, settings: Settings) -> int:
    from streams.apps.registry.serve import serve  # noqa: PLC0415

    logging.getLogger("streams").setLevel(logging.INFO)
    asyncio.run(serve(settings))
    return 0


def _ingest(_args: argparse.Namespace, settings: Settings) -> int:
    from streams.apps.ingest.serve import serve  # noqa: PLC0415

    logging.getLogger("streams").setLevel(logging.INFO)
    asyncio.run(serve(settings))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.cli.demo import DemoOptions, run_demo  # noqa: PLC0415

    options = DemoOptions(events=args.events, provider=args.provider, timeout_s=args.timeout_s, live=args.live)
    if getattr(args, "scenario", "outcomes") == "budget":
        from streams.cli.demo_budget import run_budget_demo  # noqa: PLC0415

        return run_budget_demo(settings, options)
    return run_demo(settings, options)


if __name__ == "__main__":
    sys.exit(main())
