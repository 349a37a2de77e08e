"""Property-based: random keys, values and headers through the worker's door (control headers),
``process``, emit and the review record codec. No exception escapes; each input ends in exactly one
outcome whose records encode and fit."""

from __future__ import annotations

import asyncio

import orjson
from fakes import ScriptedModel, make_deps, reply
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from review_samples import NO_PRICES, review_record
from sample_keys import KEYS

from streams.agent.definition import Agent
from streams.contracts.control import CONTROL_HEADERS, H_SIGNATURE, read_control
from streams.contracts.dead_letter import record_size
from streams.contracts.emit import Emitter
from streams.contracts.out_record import OutRecord
from streams.core.catalogue import Catalogue
from streams.core.domain import DeadLetter, RequestEvent, Result, Review, SourceRecord
from streams.core.errors import DecodeError
from streams.core.settings import Settings
from streams.pipeline.decode import encode_request, read_source, refused
from streams.pipeline.process import process
from streams.review.records import decode_item

ANSWER = {"category": "billing", "priority": "high", "summary": "Double charge.", "suggested_reply": "Sorry!"}
NAMES = sorted(CONTROL_HEADERS | {H_SIGNATURE, "keel.retry.attempts", "keel.event_id", "trace", "keel.dlq.stage"})
header_names = st.one_of(st.sampled_from(NAMES), st.text(max_size=20))
header_values = st.one_of(st.none(), st.binary(max_size=64), st.sampled_from([b"1", b"2", b"9" * 5000, b"\xff"]))
headers = st.lists(st.tuples(header_names, header_values), max_size=8).map(tuple)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _event(event_id: str, tenant: str) -> RequestEvent:
    body = {"ticket_id": "T-1", "body": "Charged twice"}
    return RequestEvent(event_id, 1_700_000_000_000, tenant, "zendesk", "T-1", body, orjson.dumps(body).decode())


@st.composite
def records(draw: st.DrawFn, catalogue: Catalogue) -> SourceRecord:
    """An input record: a valid envelope (maybe signed), or random bytes, with random headers."""
    kind = draw(st.sampled_from(["valid", "signed", "bytes", "framed"]))
    key = draw(st.one_of(st.none(), st.binary(max_size=32)))
    extra = draw(headers)
    if kind in ("valid", "signed"):
        value = encode_request(catalogue, _event(draw(st.text(min_size=1, max_size=40)), draw(st.text(max_size=10))))
    elif kind == "framed":
        value = b"\x00\x00\x00\x00\x01" + draw(st.binary(max_size=200))
    else:
        value = draw(st.binary(max_size=200))
    if kind == "signed":
        signed = KEYS.sign(OutRecord("support.tickets", key, value, extra, partition=2))
        extra = signed.headers
    return SourceRecord("support.tickets", 2, draw(st.integers(0, 2**40)), None, key, value, extra)


@given(data=st.data())
@SLOW
def test_any_input_record_ends_in_exactly_one_outcome_that_encodes_and_fits(
    catalogue: Catalogue, agents: dict[str, Agent], data: st.DataObject
) -> None:
    agent = agents["support_triage"]
    source = data.draw(records(catalogue))
    deps = make_deps(catalogue, {"local": ScriptedModel([reply(orjson.dumps(ANSWER).decode())] * 20)})
    decoded = read_source(catalogue, source, max_event_bytes=deps.max_event_bytes, clock=deps.clock)
    skip: tuple[str, ...] = ()
    if decoded.event is not None:
        try:
            control = read_control(KEYS, source)
            skip = control.skip_models
        except DecodeError as exc:
            decoded = refused(source, exc, ms=0.0)
    outcome = asyncio.run(process(source, agent, deps, decoded=decoded, skip_models=skip))
    assert isinstance(outcome, Result | Review | DeadLetter)
    emitter = Emitter(catalogue, Settings(namespace="t1"), [agent], pricing=NO_PRICES)
    emission = emitter.records(outcome, agent, now_ms=5)
    assert emission.outcome.key == outcome.trace.event_id.encode()
    for record in emission.all():
        assert record_size(record.key, record.value, record.headers) <= 1024 * 1024


@given(value=st.binary(max_size=300), review_headers=headers, pass_header=header_values)
@SLOW
def test_any_review_record_decodes_to_an_item_or_a_decode_error(
    catalogue: Catalogue,
    agents: dict[str, Agent],
    value: bytes,
    review_headers: tuple[tuple[str, bytes | None], ...],
    pass_header: bytes | None,
) -> None:
    """The review service reads every record of ``<agent>.review`` at start-up: any header on a record
    the worker wrote, or any bytes, must not stop it."""
    genuine = review_record(catalogue, Settings(namespace="t1"), agents["support_triage"]).value
    review_headers = (*review_headers, ("keel.review.pass", pass_header), ("keel.review.skip_model", pass_header))
    for data in (genuine, value, b"\x00\x00\x00\x00\x0a" + value, b"\x00\x00\x00\x00\x05" + value):
        try:
            item = decode_item(catalogue, data, review_headers)
        except DecodeError:
            continue
        assert item.rerun_pass >= 1 and all(isinstance(m, str) for m in item.skipped_models)
