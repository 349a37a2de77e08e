from collections.abc import Callable

from fakes import FakeClock
from prometheus_client.parser import text_string_to_metric_families

from streams.apps.metrics import LiveSources, WorkerMetrics
from streams.core.domain import Attempt, DeadLetter, Failure, Result, SourceRecord, Stage, Trace
from streams.cost.pricing import Price, PriceTable, Pricing
from streams.pipeline.circuit import CircuitState, CircuitView
from streams.pipeline.model_slots import ModelSlots

PRICING = Pricing(
    PriceTable(version="v1", prices=(Price(provider="sim", model="m", input_usd_per_mtok=1, output_usd_per_mtok=2),))
)


def _samples(metrics: WorkerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _attempt(number: int, *, model: str = "m", outcome: str = "ok", purpose: str = "initial") -> Attempt:
    return Attempt("sim", model, number, 0, 0.3, 1000, 500, "v", outcome, purpose)


def test_an_outcome_counts_the_event_its_attempts_tokens_and_cost(
    make_source: Callable[..., SourceRecord], make_event
) -> None:
    metrics = WorkerMetrics(PRICING)
    event = make_event()
    attempts = (_attempt(1, outcome="provider_timeout"), _attempt(2, purpose="retry"), _attempt(3, model="x"))
    trace = Trace(make_source(event=event), 1, event, "ph", attempts, decode_ms=1.0, total_ms=2000.0)
    metrics.observe("triage", Result(trace, {}, "{}", "v"))
    failure = Failure(Stage.DECODE, "NotConfluentFramed", "not_confluent_framed", "bad")
    metrics.observe("triage", DeadLetter(Trace(make_source(b"junk"), 1, None, None, (), 0.1, 0.2), failure))
    got = _samples(metrics)
    assert got["keel_events_total", (("agent", "triage"), ("outcome", "result"))] == 1
    assert got["keel_events_total", (("agent", "triage"), ("outcome", "dead_letter"))] == 1
    assert got["keel_dead_letters_total", (("agent", "triage"), ("reason", "not_confluent_framed"))] == 1
    timeout = (
        ("agent", "triage"),
        ("model", "m"),
        ("provider", "sim"),
        ("purpose", "initial"),
        ("result", "provider_timeout"),
    )
    assert got["keel_model_attempts_total", timeout] == 1
    tokens_in = (("agent", "triage"), ("direction", "in"), ("model", "m"), ("provider", "sim"))
    assert got["keel_model_tokens_total", tokens_in] == 2000
    assert got["keel_model_cost_usd_total", (("agent", "triage"), ("model", "m"), ("provider", "sim"))] == 2 * 0.002
    assert got["keel_model_unpriced_attempts_total", (("model", "x"), ("provider", "sim"))] == 1
    slow = (("agent", "triage"), ("le", "2.5"), ("outcome", "result"))
    assert got["keel_event_duration_seconds_bucket", slow] == 1
    assert got["keel_event_duration_seconds_bucket", (("agent", "triage"), ("le", "1.0"), ("outcome", "result"))] == 0


def test_repeated_label_sets_add_up_and_stay_apart(make_source: Callable[..., SourceRecord], make_event) -> None:
    """Label children are looked up once and reused: each event still counts, under its own labels."""
    metrics = WorkerMetrics(PRICING)
    event = make_event()
    trace = Trace(make_source(event=event), 1, event, "ph", (_attempt(1),), decode_ms=1.0, total_ms=20.0)
    for agent in ("triage", "triage", "triage", "other"):
        metrics.observe(agent, Result(trace, {}, "{}", "v"))
    got = _samples(metrics)
    assert got["keel_events_total", (("agent", "triage"), ("outcome", "result"))] == 3
    assert got["keel_events_total", (("agent", "other"), ("outcome", "result"))] == 1
    tokens = (("agent", "triage"), ("direction", "out"), ("model", "m"), ("provider", "sim"))
    assert got["keel_model_tokens_total", tokens] == 3 * 500
    assert got["keel_model_tokens_total", (*tokens[:1], ("direction", "in"), *tokens[2:])] == 3 * 1000
    assert got["keel_model_latency_seconds_count", (("model", "m"), ("provider", "sim"))] == 4


def test_gauges_are_read_when_scraped() -> None:
    metrics = WorkerMetrics(PRICING)
    in_flight = {"triage": 3}
    metrics.watch(
        LiveSources(
            in_flight=in_flight.items,
            circuits=lambda: [CircuitView("sim/m", CircuitState.OPEN, 5, 1.0, "provider_5xx")],
            lag=lambda: [("tickets", 2, 40)],
        )
    )
    assert _samples(metrics)["keel_in_flight", (("agent", "triage"),)] == 3
    in_flight["triage"] = 0
    got = _samples(metrics)
    assert got["keel_in_flight", (("agent", "triage"),)] == 0
    assert got["keel_circuit_state", (("model", "m"), ("provider", "sim"))] == 1.0
    assert got["keel_consumer_lag", (("partition", "2"), ("topic", "tickets"))] == 40


def test_rate_limit_waits_refusals_and_holds_are_counted_per_model_and_limit() -> None:
    metrics = WorkerMetrics(PRICING)
    metrics.rate_limits.waited("triage", "sim/m", "model_requests", 1.5)
    metrics.rate_limits.waited("triage", "sim/m", "model_requests", 0.2)
    metrics.rate_limits.refused("triage", "sim/m", "provider_hold")
    metrics.rate_limits.held("sim/m", "retry_after")
    metrics.rate_limits.shared("model", "sim/m", 0.5)
    got = _samples(metrics)
    assert got["keel_rate_limit_share", (("name", "sim/m"), ("scope", "model"))] == 0.5
    labels = (("agent", "triage"), ("limit", "model_requests"), ("model", "m"), ("provider", "sim"))
    assert got["keel_rate_limit_wait_seconds_count", labels] == 2
    assert got["keel_rate_limit_wait_seconds_sum", labels] == 1.7
    assert got["keel_rate_limited_total", (("action", "waited"), *labels)] == 2
    held = (("agent", "triage"), ("limit", "provider_hold"), ("model", "m"), ("provider", "sim"))
    assert got["keel_rate_limited_total", (("action", "refused"), *held)] == 1
    assert got["keel_rate_limit_holds_total", (("cause", "retry_after"), ("model", "m"), ("provider", "sim"))] == 1


def test_queue_waits_for_a_model_slot_and_give_ups_are_counted_per_model() -> None:
    metrics = WorkerMetrics(PRICING)
    slots = ModelSlots({"local/smollm2": 1}, FakeClock())
    slots.observer = metrics.model_queue  # as the worker wires it
    slots.observer.waited("local/smollm2", 0.0)
    slots.observer.waited("local/smollm2", 4.5)
    slots.observer.gave_up("local/smollm2", 30.0)
    got = _samples(metrics)
    labels = (("model", "smollm2"), ("provider", "local"))
    assert got["keel_model_queue_wait_seconds_count", labels] == 2
    assert got["keel_model_queue_wait_seconds_sum", labels] == 4.5
    assert got["keel_model_queue_wait_seconds_bucket", (("le", "5.0"), *labels)] == 2
    assert got["keel_model_queue_gave_up_total", labels] == 1
