import struct
from collections.abc import Callable

import pytest

from streams.core.catalogue import Catalogue
from streams.core.domain import RequestEvent
from streams.core.errors import (
    EventTooLarge,
    InvalidPayload,
    InvalidUtf8,
    MalformedAvro,
    MissingField,
    NotConfluentFramed,
    UnexpectedSchema,
    UnknownSchemaId,
)
from streams.pipeline.decode import decode_request, encode_request

LIMIT = 256 * 1024


def test_round_trip(catalogue: Catalogue, make_event: Callable[..., RequestEvent]) -> None:
    event = make_event(trace_id="trace-9")
    decoded = decode_request(catalogue, encode_request(catalogue, event), max_event_bytes=LIMIT)
    assert decoded == event


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", NotConfluentFramed, "shorter than the 5-byte"),
        (b'{"event_id": "x"}', NotConfluentFramed, "not the Confluent wire-format magic byte"),
        (struct.pack(">bI", 0, 9999) + b"\x00", UnknownSchemaId, "schema id 9999"),
    ],
)
def test_bad_framing(catalogue: Catalogue, data: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        decode_request(catalogue, data, max_event_bytes=LIMIT)


def test_value_of_another_subject_is_refused(catalogue: Catalogue) -> None:
    data = struct.pack(">bI", 0, catalogue.by_subject("keel.usage-value").id) + b"\x00" * 30
    with pytest.raises(UnexpectedSchema, match="expected 'keel.request-value'"):
        decode_request(catalogue, data, max_event_bytes=LIMIT)


def test_truncated_body_is_malformed(catalogue: Catalogue, request_bytes: Callable[..., bytes]) -> None:
    data = request_bytes()
    with pytest.raises(MalformedAvro):
        decode_request(catalogue, data[:-6], max_event_bytes=LIMIT)


def test_trailing_bytes_are_malformed(catalogue: Catalogue, request_bytes: Callable[..., bytes]) -> None:
    with pytest.raises(MalformedAvro, match="left over"):
        decode_request(catalogue, request_bytes() + b"junk", max_event_bytes=LIMIT)


def test_invalid_utf8_in_a_string(catalogue: Catalogue, request_bytes: Callable[..., bytes]) -> None:
    data = request_bytes(tenant="tenant-x")
    broken = data.replace(b"tenant-x", b"tenant\xff\xfe")
    with pytest.raises(InvalidUtf8):
        decode_request(catalogue, broken, max_event_bytes=LIMIT)


def test_empty_required_fields(catalogue: Catalogue, request_bytes: Callable[..., bytes]) -> None:
    with pytest.raises(MissingField, match="event_id, business_key"):
        decode_request(catalogue, request_bytes(event_id=" ", business_key=""), max_event_bytes=LIMIT)


@pytest.mark.parametrize(("payload", "words"), [("not json", "not JSON"), ("[1, 2]", "must be a JSON object")])
def test_payload_must_be_a_json_object(
    catalogue: Catalogue, request_bytes: Callable[..., bytes], payload: str, words: str
) -> None:
    with pytest.raises(InvalidPayload, match=words):
        decode_request(catalogue, request_bytes(payload_json=payload), max_event_bytes=LIMIT)


def test_oversized_event(catalogue: Catalogue, request_bytes: Callable[..., bytes]) -> None:
    data = request_bytes(payload_json='{"body": "' + "x" * 5000 + '"}')
    with pytest.raises(EventTooLarge, match="at most 4,096"):
        decode_request(catalogue, data, max_event_bytes=4096)
