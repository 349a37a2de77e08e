"""`make bench`: throughput and overhead on the real local broker, every variant in one invocation.

1. raw, faust and keel with a zero-latency model stand-in, interleaved and repeated (median);
2. Keel with a 500 ms model at in-flight limits C over K keys (and 8 hot keys): throughput and
   efficiency = throughput / (min(C, K) / 0.5 s);
3. end-to-end latency minus model time at 50% and 70% of Keel's measured capacity, p50 and p99;
4. the worker's peak RSS at C = 1024.

Each run gets a fresh namespace loaded with the same pre-encoded events, then the variant's process
(tests/bench/variant.py) is started and the results topic is watched; the rate is measured between 5%
and 100% of the events, so start-up is not counted. Prints a table, writes tests/bench/throughput.png,
and prints one JSON object as the last line.

    python tests/bench/run.py latency 5    # phase 1's Keel capacity, then phase 3 at 70% only, 5 times
    python tests/bench/run.py throughput 3 keel raw    # phase 1 only, 3 rounds, with the worker's CPU per event
    python tests/bench/run.py throughput 3 keel@/path/to/other/tree keel    # another tree's code against this one
    KEEL_BENCH_PORT=29792 python tests/bench/run.py    # the broker on another port
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, run as a script
from agent_files import write_agents

from connectors.local import kafka_local
from streams.agent.definition import load_agents
from streams.cli.local_stack import terminate
from streams.contracts.out_record import OutRecord
from streams.contracts.topics import topic_plan
from streams.core.catalogue import Catalogue, load_catalogue
from streams.core.domain import RequestEvent
from streams.core.settings import REPO_ROOT, Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.connection import client_config
from streams.kafka.producer import RecordProducer
from streams.pipeline.decode import decode_request, encode_request

BENCH_PORT = int(os.environ.get("KEEL_BENCH_PORT", "29492"))  # another port: two benches side by side
HERE = Path(__file__).resolve().parent
PLOT = HERE / "throughput.png"
REPEATS = 3
BASE_EVENTS = int(os.environ.get("KEEL_BENCH_EVENTS", "10000"))  # more, for a profiler to sample
SWEEP = [(1, 8), (16, 128), (64, 512), (256, 2048), (1024, 8192), (256, 8)]  # (C, K): K = 8C, or 8 hot keys
MODEL_S = 0.5
TICKET = {"ticket_id": "T-1", "subject": "Charged twice", "body": "I was charged twice for my order. Please refund."}


@dataclass
class Bench:
    broker: kafka_local.LocalKafka
    catalogue: Catalogue
    agents_dir: Path
    state_dir: Path


@dataclass
class Measured:
    eps: float
    events: int
    done: int
    rss_mb: float
    cpu_us: float = 0.0  # the variant process's CPU time (user + system) per event, over the measured span


def make_events(catalogue: Catalogue, count: int, keys: int) -> list[tuple[bytes, bytes]]:
    now = int(time.time() * 1000)
    out = []
    for i in range(count):
        key = f"CUST-{i % keys}"
        event = RequestEvent(str(uuid.uuid4()), now, "acme", "bench", key, TICKET, orjson.dumps(TICKET).decode())
        out.append((key.encode(), encode_request(catalogue, event)))
    return out


def settings_for(bench: Bench, namespace: str) -> Settings:
    return Settings(
        bootstrap_servers=bench.broker.bootstrap,
        namespace=namespace,
        agents_dir=bench.agents_dir,
        agents=["support_triage"],
        provider_override="sim",
        state_dir=bench.state_dir,
    )


@contextlib.asynccontextmanager
async def variant_process(
    bench: Bench, variant: str, namespace: str, *, latency_ms: float, c: int
) -> AsyncIterator[subprocess.Popen[bytes]]:
    settings = settings_for(bench, namespace)
    await ensure_topics(client_config(settings), topic_plan(load_agents(bench.agents_dir, bench.catalogue), settings))
    env = {
        **os.environ,
        "KEEL_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "KEEL_NAMESPACE": namespace,
        "KEEL_AGENTS_DIR": str(bench.agents_dir),
        "KEEL_AGENTS": '["support_triage"]',
        "KEEL_PROVIDER_OVERRIDE": "sim",
        "KEEL_STATE_DIR": str(bench.state_dir),
        "KEEL_WEB_PORT": "0",
        "KEEL_MAX_IN_FLIGHT": str(c),
        "KEEL_LOG_LEVEL": "warning",
        "BENCH_LATENCY_MS": str(latency_ms),
    }
    variant, _, code = variant.partition("@")  # `keel@/path/to/tree`: that tree's code, to compare two
    if code:
        env["PYTHONPATH"] = code
    log = (bench.state_dir / f"{namespace}-{variant}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(Path(code or HERE.parent.parent) / "tests" / "bench" / "variant.py"), variant],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        terminate(process)
        log.close()
        await delete_namespace(bench, namespace)


async def delete_namespace(bench: Bench, namespace: str) -> None:
    """A run's topics go when it ends, so that later runs meet a broker as lean as the first did."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bench.broker.bootstrap)
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith((f"{namespace}.", f"keel-{namespace}-"))]
        await admin.delete_topics(ours)
    finally:
        await admin.close()


async def publish(bench: Bench, topic: str, events: list[tuple[bytes, bytes]]) -> None:
    async with RecordProducer(bench.broker.client) as producer:
        for start in range(0, len(events), 5000):
            await producer.send_all(OutRecord(topic, k, v, ()) for k, v in events[start : start + 5000])


class ResultCounter:
    def __init__(self, bench: Bench, topic: str, partitions: int) -> None:
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bench.broker.bootstrap)

    async def __aenter__(self) -> ResultCounter:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def count(self) -> int:
        return sum((await self.consumer.end_offsets(self.partitions)).values())


def cpu_s(process: subprocess.Popen[bytes]) -> float:
    """The process's user plus system CPU time so far (every thread), from /proc."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def peak_rss_mb(process: subprocess.Popen[bytes]) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def throughput(
    bench: Bench, variant: str, events: list[tuple[bytes, bytes]], *, latency_ms: float = 0, c: int = 256,
    timeout_s: float = 90,
) -> Measured:  # fmt: skip
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = settings_for(bench, namespace)
    total = len(events)
    async with variant_process(bench, variant, namespace, latency_ms=latency_ms, c=c) as process:
        await publish(bench, settings.topic("support.tickets"), events)
        async with ResultCounter(bench, settings.topic("support_triage.results"), settings.partitions) as results:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            first: tuple[float, int, float] | None = None  # at 5%: start-up is over
            last: tuple[float, int, float] | None = None  # at 95%: the tail, with fewer events left than C, is not
            done, now = 0, loop.time()
            while done < total and now < deadline and process.poll() is None:
                await asyncio.sleep(0.05)
                done, now = await results.count(), loop.time()
                first = first or ((now, done, cpu_s(process)) if done >= max(1, total // 20) else None)
                last = last or ((now, done, cpu_s(process)) if done >= total * 19 // 20 else None)
            rss = peak_rss_mb(process)
    last = last or (now, done, first[2] if first else 0.0)
    if first is None or last[0] <= first[0]:
        return Measured(0.0, total, done, rss)
    counted = last[1] - first[1]
    return Measured(counted / (last[0] - first[0]), total, done, rss, (last[2] - first[2]) / counted * 1e6)


async def latency(bench: Bench, capacity_eps: float, share: float, *, seconds: float = 8) -> tuple[float, float]:
    """Publish at ``share`` of capacity; return p50 and p99 of result time minus publish time (ms).
    The model stand-in answers at once, so that is the overhead. The harness does nothing else while
    it publishes: ids are known beforehand and results are read once everything has ended."""
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = settings_for(bench, namespace)
    rate = capacity_eps * share
    warmup = make_events(bench.catalogue, 50, 50)
    paced = make_events(bench.catalogue, int(rate * seconds), 1000)
    ids = [decode_request(bench.catalogue, value, max_event_bytes=1 << 20).event_id.encode() for _, value in paced]
    sent_at: dict[bytes, float] = {}
    per_tick = max(1, int(rate * 0.01))
    results_topic = settings.topic("support_triage.results")
    async with (
        variant_process(bench, "keel", namespace, latency_ms=0, c=256) as process,
        ResultCounter(bench, results_topic, settings.partitions) as results,
    ):
        await publish(bench, settings.topic("support.tickets"), warmup)
        while await results.count() < len(warmup) and process.poll() is None:
            await asyncio.sleep(0.1)
        await asyncio.sleep(5)  # steady state: the store partitions are loaded, the first commits done
        async with RecordProducer(bench.broker.client) as producer:
            started = time.monotonic()
            for index in range(0, len(paced), per_tick):
                await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
                stamp = time.time() * 1000
                sent_at.update((event_id, stamp) for event_id in ids[index : index + per_tick])
                batch = paced[index : index + per_tick]
                await producer.send_all(OutRecord(settings.topic("support.tickets"), k, v, ()) for k, v in batch)
        deadline = time.monotonic() + 60
        while await results.count() < len(warmup) + len(paced) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        received = await _result_times(bench, results_topic)  # before the run's topics are deleted
    latencies = sorted(received[e] - sent_at[e] for e in sent_at if e in received)
    return _percentile(latencies, 50), _percentile(latencies, 99)


async def _result_times(bench: Bench, topic: str) -> dict[bytes, float]:
    """When each result was written (its record timestamp), by event id."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bench.broker.bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        received: dict[bytes, float] = {}
        while batches := await consumer.getmany(timeout_ms=2000):
            for batch in batches.values():
                received.update((message.key, float(message.timestamp)) for message in batch)
        return received
    finally:
        await consumer.stop()


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


def plot(sweep: list[dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spread = [row for row in sweep if row["k"] >= row["c"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    cs = [row["c"] for row in spread]
    ax.plot(cs, [row["eps"] for row in spread], "o-", label="Keel, 500 ms model")
    ax.plot(cs, [c / MODEL_S for c in cs], "--", color="grey", label="ideal: C / 0.5 s")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("in-flight limit C (K = 8C keys)")
    ax.set_ylabel("events / s")
    ax.set_title("Throughput vs in-flight limit (make bench)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


async def main(argv: list[str]) -> int:
    broker = kafka_local.LocalKafka(port=BENCH_PORT, state_dir=REPO_ROOT / ".keel" / f"bench-kafka-{BENCH_PORT}")
    kafka_local.stop(broker, force=True)
    kafka_local.wipe(broker)
    await asyncio.to_thread(kafka_local.start, broker)
    state_dir = Path(tempfile.mkdtemp(prefix="keel-bench-"))
    agents_dir = write_agents(state_dir / "agents", concurrency={"max_in_flight": None})
    bench = Bench(broker, load_catalogue(REPO_ROOT / "schemas"), agents_dir, state_dir)
    try:
        if argv[:1] == ["throughput"]:  # `run.py throughput [RUNS] [VARIANT...]`: phase 1 only, with CPU
            return await _throughput_only(bench, int((argv[1:] or ["3"])[0]), argv[2:] or ["raw", "faust", "keel"])
        if argv[:1] == ["latency"]:  # `run.py latency [RUNS]`: Keel's capacity, then phase 3 RUNS times
            return await _latency_only(bench, int((argv[1:] or ["1"])[0]))
        return await _run(bench)
    finally:
        kafka_local.stop(broker)


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


async def _rounds(bench: Bench, variants: list[str], runs: int) -> dict[str, list[Measured]]:
    """Phase 1: ``runs`` rounds of the variants in turn, on the same zero-latency input, with each
    variant process's CPU time per event (on a shared machine, steadier than events/s)."""
    events = make_events(bench.catalogue, BASE_EVENTS, 1000)
    measured: dict[str, list[Measured]] = {variant: [] for variant in variants}
    for run in range(runs):
        for variant in variants:
            m = await throughput(bench, variant, events)
            measured[variant].append(m)
            say(f"{variant} #{run + 1}: {m.eps:.0f} events/s, {m.cpu_us:.0f} µs CPU/event ({m.done}/{m.events})")
    return measured


async def _throughput_only(bench: Bench, runs: int, variants: list[str]) -> int:
    """Phase 1 alone."""
    measured = await _rounds(bench, variants, runs)
    summary = {
        variant: {"eps": [round(m.eps) for m in ms], "cpu_us": [round(m.cpu_us, 1) for m in ms]}
        for variant, ms in measured.items()
    }
    print(orjson.dumps(summary).decode())
    return 0


async def _latency_only(bench: Bench, runs: int) -> int:
    """Keel's capacity as phase 1 measures it (which also warms the broker up), then phase 3 at 70%
    of it, ``runs`` times."""
    capacity_eps = statistics.median(m.eps for m in (await _rounds(bench, ["keel"], REPEATS))["keel"])
    p50s, p99s = [], []
    for run in range(runs):
        p50, p99 = await latency(bench, capacity_eps, 0.7)
        p50s.append(round(p50, 1))
        p99s.append(round(p99, 1))
        say(f"latency #{run + 1} at 70% of {capacity_eps:.0f} events/s: overhead p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(orjson.dumps({"overhead_p50_ms_70": p50s, "overhead_p99_ms_70": p99s}).decode())
    return 0


async def _run(bench: Bench) -> int:
    rounds = await _rounds(bench, ["raw", "faust", "keel"], REPEATS)
    eps = {variant: statistics.median(m.eps for m in ms) for variant, ms in rounds.items()}
    sweep, rss_c1024 = [], 0.0
    for c, k in SWEEP:
        ideal = min(c, k) / MODEL_S
        count = int(min(15_000, max(40, ideal * 8)))
        measured = await throughput(
            bench, "keel", make_events(bench.catalogue, count, k), latency_ms=MODEL_S * 1000, c=c, timeout_s=120
        )
        sweep.append({"c": c, "k": k, "eps": round(measured.eps, 1), "efficiency": round(measured.eps / ideal, 3)})
        if c == 1024:
            rss_c1024 = measured.rss_mb
        say(f"sweep C={c} K={k}: {measured.eps:.1f} events/s, efficiency {measured.eps / ideal:.2f}, "
            f"{measured.done}/{measured.events} done, peak RSS {measured.rss_mb:.0f} MB")  # fmt: skip
    overhead = {}
    for share in (0.5, 0.7):
        p50, p99 = await latency(bench, eps["keel"], share)
        overhead[share] = (p50, p99)
        say(f"latency at {share:.0%} of {eps['keel']:.0f} events/s: overhead p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    plot(sweep)
    print(f"{'variant':<10}{'events/s (median of ' + str(REPEATS) + ')':>28}")
    for variant, value in eps.items():
        print(f"{variant:<10}{value:>28.0f}")
    print(f"\n{'C':>6}{'K':>6}{'events/s':>12}{'efficiency':>12}")
    for row in sweep:
        print(f"{row['c']:>6}{row['k']:>6}{row['eps']:>12.1f}{row['efficiency']:>12.3f}")
    print(f"\noverhead p50/p99 at 50%: {overhead[0.5][0]:.1f}/{overhead[0.5][1]:.1f} ms, "
          f"at 70%: {overhead[0.7][0]:.1f}/{overhead[0.7][1]:.1f} ms; peak RSS at C=1024: {rss_c1024:.0f} MB")  # fmt: skip
    print(f"plot: {PLOT.relative_to(REPO_ROOT)}")
    summary = {
        "raw_eps": round(eps["raw"], 1),
        "faust_eps": round(eps["faust"], 1),
        "keel_eps": round(eps["keel"], 1),
        "keel_vs_raw": round(eps["keel"] / eps["raw"], 3) if eps["raw"] else None,
        "keel_vs_faust": round(eps["keel"] / eps["faust"], 3) if eps["faust"] else None,
        "sweep": sweep,
        "overhead_p99_ms_70": round(overhead[0.7][1], 1),
        "rss_mb_c1024": round(rss_c1024, 1),
    }
    print(orjson.dumps(summary).decode())
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
