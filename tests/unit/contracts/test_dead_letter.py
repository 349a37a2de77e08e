"""A dead letter fits its bound whatever the input carried, and says when it was cut."""

from review_samples import NO_PRICES

from streams.agent.definition import Agent
from streams.contracts.dead_letter import H_TRUNCATED, record_size
from streams.contracts.emit import Emitter
from streams.core import wire
from streams.core.catalogue import Catalogue
from streams.core.domain import DeadLetter, Failure, SourceRecord, Stage, Trace
from streams.core.settings import Settings

MAX = 64 * 1024


def _dead_letter(catalogue: Catalogue, agent: Agent, source: SourceRecord):
    emitter = Emitter(catalogue, Settings(namespace="t1", dead_letter_max_bytes=MAX), [agent], pricing=NO_PRICES)
    dead = DeadLetter(Trace(source, 1), Failure(Stage.DECODE, "MalformedAvro", "malformed_avro", "m" * 10_000))
    record = emitter.records(dead, agent, now_ms=5).outcome
    return record, wire.decode(catalogue, record.value, subject="keel.dlq-value")


def test_a_small_dead_letter_keeps_the_original_whole(catalogue: Catalogue, agents: dict[str, Agent]) -> None:
    source = SourceRecord("support.tickets", 1, 7, 3, b"k", b"\x01raw", (("trace", b"t"), ("keel.x", b"y")))
    record, value = _dead_letter(catalogue, agents["support_triage"], source)
    assert value["original_truncated"] is False and value["original"]["value"] == b"\x01raw"
    assert [(h["key"], h["value"]) for h in value["original"]["headers"]] == list(source.headers)
    assert H_TRUNCATED not in dict(record.headers) and dict(record.headers)["keel.dlq.pass"] == b"0"


def test_a_dead_letter_of_a_huge_record_with_many_large_headers_fits_and_is_marked(
    catalogue: Catalogue, agents: dict[str, Agent]
) -> None:
    headers = tuple((f"h{i}", bytes([i % 256]) * 4000) for i in range(200))  # 800 KB of headers
    source = SourceRecord("support.tickets", 1, 7, 3, b"K" * 100_000, b"\x00" + b"v" * 300_000, headers)
    record, value = _dead_letter(catalogue, agents["support_triage"], source)
    assert record_size(record.key, record.value, record.headers) <= MAX
    assert value["original_truncated"] is True and dict(record.headers)[H_TRUNCATED] == b"true"
    original = value["original"]
    assert source.value.startswith(original["value"]) and len(original["value"]) > 0
    assert source.key.startswith(original["key"]) and len(original["key"]) < len(source.key)
    kept = [(h["key"], h["value"]) for h in original["headers"]]
    assert kept == list(headers[: len(kept)])  # in order, whole headers only
    assert (value["reason"], value["original"]["offset"]) == ("malformed_avro", 7)  # the facts are whole
