"""Errors in records Keel reads or writes: an input event it cannot decode or may not run, and a record
no broker will ever take."""

from __future__ import annotations

from streams.core.errors.base import KeelError

# --- decoding input events ------------------------------------------------------------------------


class DecodeError(KeelError):
    """The input bytes are not a valid request event."""

    reason = "decode_failed"


class NotConfluentFramed(DecodeError):
    reason = "wrong_magic_byte"


class UnknownSchemaId(DecodeError):
    reason = "unknown_schema_id"


class UnexpectedSchema(DecodeError):
    reason = "unexpected_schema"


class MalformedAvro(DecodeError):
    reason = "malformed_avro"


class InvalidUtf8(DecodeError):
    reason = "invalid_utf8"


class UnexpectedValue(DecodeError):
    """The value decodes, but a field holds what Keel never writes (a partition that does not exist,
    a key that is not UTF-8, a number that is not finite)."""

    reason = "unexpected_value"


class EventTooLarge(DecodeError):
    reason = "event_too_large"


class InvalidPayload(DecodeError):
    reason = "invalid_payload"


class FieldTooLong(DecodeError):
    """An identifier longer than Keel carries: it goes into keys and headers of every record."""

    reason = "field_too_long"


class ControlHeaderForged(DecodeError):
    """A control header (replay, re-run, pass, models to skip) whose signature does not verify: not
    written by Keel, or copied onto another record (streams/contracts/control.py)."""

    reason = "control_header_forged"


class ControlHeaderMalformed(DecodeError):
    """A signed control header that cannot be read: repeated, not UTF-8, or a pass that is no number."""

    reason = "control_header_malformed"


class ConfigVersionUnavailable(DecodeError):
    """A replay pinned to an agent version this worker cannot run (unknown, or refused)."""

    reason = "config_version_unavailable"


class EventIdConflict(DecodeError):
    """A record that reuses the event id of another, already recorded input: it never receives that
    event's outcome (streams/kafka/outcome_store.py)."""

    reason = "event_id_conflict"


class MissingField(DecodeError):
    reason = "missing_required_field"


class WriteRejected(KeelError):
    """The broker, or the client, will never take this record (too large, invalid): sending it again
    cannot succeed (streams/kafka/producer.py)."""

    reason = "write_rejected"
