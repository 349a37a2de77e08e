"""Control headers: the few headers that steer how the worker runs an input record, honoured only when
Keel itself wrote them.

A reviewer's re-run (``keel.review.rerun_of``, ``keel.review.pass``, ``keel.review.skip_model``) and an
on-call engineer's replay of a dead letter (``keel.replay``, ``keel.replay.of``, ``keel.replay.pass``) ask
the worker to run an event again as a later pass, maybe without some models. Anyone who can write to an
input topic can set any header, so these carry ``keel.control.sig``: an HMAC-SHA256 over the record's
topic, partition, key, a digest of its value (which holds the event id) and every control header. Copied
onto another record, moved to another partition or changed in any way, it no longer verifies.

``read_control`` is what the worker does with a record's headers:
- no control header and no signature: a plain delivery;
- control headers without a signature: ignored (counted), the record is a plain delivery: a producer
  cannot make Keel decide an event again, and so cannot make it pay twice;
- a signature that does not verify: ``ControlHeaderForged``; a signed header that cannot be read:
  ``ControlHeaderMalformed``. Both end the record as a dead letter (stage ``decode``).

Keys rotate without downtime: every process verifies with any key it knows and signs with one of them
(streams/contracts/control_keys.py). Pure: hashing and parsing only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from streams.contracts.headers import H_RERUN_NUMBER, H_RERUN_OF, H_SKIP_MODEL
from streams.contracts.out_record import OutRecord
from streams.core.domain import SourceRecord
from streams.core.errors import ControlHeaderForged, ControlHeaderMalformed

H_REPLAY = "keel.replay"  # on a record re-published from a dead letter: decide it again
H_REPLAY_OF = "keel.replay.of"  # where the replayed record first arrived
H_REPLAY_PASS = "keel.replay.pass"  # noqa: S105  # the pass the replay is: one after the dead letter's
H_REPLAY_CONFIG = "keel.replay.config_version"  # the agent version that decides the replay (else the live one)
_VERSION_ID = re.compile(rb"[0-9a-f]{12}")  # streams/agent/definition.py: config_digest
H_SIGNATURE = "keel.control.sig"  # v1.<key id>.<hex HMAC-SHA256>
CONTROL_HEADERS = frozenset(
    {H_REPLAY, H_REPLAY_OF, H_REPLAY_PASS, H_REPLAY_CONFIG, H_RERUN_OF, H_RERUN_NUMBER, H_SKIP_MODEL}
)
MAX_PASS_DIGITS = 9  # a pass is a small count; thousands of digits would cost int() more than the event
_VERSION = "v1"
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class ControlKeys:
    """The keys a process verifies with (by id), and the id of the one it signs with."""

    signing_id: str
    secrets: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.signing_id not in self.secrets:
            raise ValueError(f"the signing key {self.signing_id!r} is not among the keys")

    def sign(self, record: OutRecord) -> OutRecord:
        """``record`` with its control headers signed (any earlier signature replaced). Its partition
        must be set: the signature holds only there."""
        if record.partition is None:
            raise ValueError("a signed control record needs an explicit partition")
        headers = tuple((k, v) for k, v in record.headers if k != H_SIGNATURE)
        signed = SourceRecord(record.topic, record.partition, -1, None, record.key, record.value, headers)
        mac = self._mac(self.signing_id, signed)
        signature = f"{_VERSION}.{self.signing_id}.{mac}".encode()
        return dataclasses.replace(record, headers=(*headers, (H_SIGNATURE, signature)))

    def verifies(self, signature: bytes | None, source: SourceRecord) -> bool:
        version, _, rest = (signature or b"").decode("ascii", "replace").partition(".")
        key_id, _, mac = rest.rpartition(".")
        if version != _VERSION or key_id not in self.secrets:
            return False
        expected = self._mac(key_id, source)
        return hmac.compare_digest(expected, mac)

    def _mac(self, key_id: str, record: SourceRecord) -> str:
        """Over the record's topic, partition, key, value digest and control headers (not its offset)."""
        signed = sorted((k, v or b"") for k, v in record.headers if k in CONTROL_HEADERS)
        parts = [b"keel.control." + _VERSION.encode(), record.topic.encode(), str(record.partition).encode()]
        parts += [b"\xff" if record.key is None else record.key, hashlib.sha256(record.value).digest()]
        parts += [item for name, header in signed for item in (name.encode(), header)]
        message = b"".join(_LENGTH.pack(len(part)) + part for part in parts)
        return hmac.new(self.secrets[key_id], message, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Control:
    """What a record's verified control headers ask for."""

    pass_number: int = 0  # 0: a plain delivery of the event's first pass
    skip_models: tuple[str, ...] = ()  # provider/models to leave out of the chain
    replay: bool = False  # an engineer's replay of a dead letter (else a reviewer's re-run)
    ignored: bool = False  # it carried control headers without a signature, and they were ignored
    config_version: str | None = None  # a replay pinned to this agent version (streams/agent/versions.py)


PLAIN = Control()


def read_control(keys: ControlKeys, source: SourceRecord) -> Control:
    """Raises ``ControlHeaderForged`` or ``ControlHeaderMalformed``."""
    control = [(k, v) for k, v in source.headers if k in CONTROL_HEADERS]
    signatures = [v for k, v in source.headers if k == H_SIGNATURE]
    if not signatures:
        return Control(ignored=True) if control else PLAIN
    if len(signatures) > 1 or not control:
        raise ControlHeaderMalformed(f"{len(signatures)} {H_SIGNATURE} header(s) over {len(control)} control header(s)")
    if not keys.verifies(signatures[0], source):
        raise ControlHeaderForged(f"the {H_SIGNATURE} header does not verify for this record at {source.position}")
    found = dict(control)
    if len(found) < len(control):
        raise ControlHeaderMalformed("a control header is repeated")
    return _parsed(found)


def _parsed(found: Mapping[str, bytes | None]) -> Control:
    rerun, replay = H_RERUN_NUMBER in found, H_REPLAY_PASS in found
    if rerun == replay:
        raise ControlHeaderMalformed(f"a control record names exactly one of {H_RERUN_NUMBER} and {H_REPLAY_PASS}")
    pass_number = parse_pass(found[H_RERUN_NUMBER if rerun else H_REPLAY_PASS])
    if pass_number is None or pass_number < 1:
        raise ControlHeaderMalformed("the control record's pass is not a number from 1")
    pinned = found.get(H_REPLAY_CONFIG)
    if pinned is not None and (not replay or not _VERSION_ID.fullmatch(pinned)):
        raise ControlHeaderMalformed(f"{H_REPLAY_CONFIG} is not a version id of a replay")
    return Control(
        pass_number, parse_models(found.get(H_SKIP_MODEL)), replay=replay,
        config_version=pinned.decode() if pinned is not None else None,
    )  # fmt: skip


def parse_pass(raw: bytes | None) -> int | None:
    """A pass number header's value; None when it is missing or not a short decimal number."""
    if not raw or len(raw) > MAX_PASS_DIGITS or not raw.isdigit():
        return None
    return int(raw)


def parse_models(raw: bytes | None) -> tuple[str, ...]:
    """A comma-separated provider/model list. Raises ``ControlHeaderMalformed`` for bytes not UTF-8."""
    try:
        text = (raw or b"").decode()
    except UnicodeDecodeError as exc:
        raise ControlHeaderMalformed(f"{H_SKIP_MODEL} is not UTF-8") from exc
    return tuple(dict.fromkeys(key for key in text.split(",") if key))
