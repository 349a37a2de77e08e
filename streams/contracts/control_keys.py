"""The control-header keys of this process (streams/contracts/control.py), from settings or this machine.

``KEEL_CONTROL_KEYS`` names them by id (JSON: ``{"k2": "...", "k1": "..."}``); ``KEEL_CONTROL_SIGNING_KEY_ID``
picks the one that signs (default: the first listed). Every key listed is accepted when verifying, which is
how a key rotates without downtime: list the new key everywhere, then sign with it, then drop the old one
once no record signed with it waits in a topic. Without configured keys, every process of this machine
shares a random key kept in ``<state_dir>/control.key``: enough for the embedded defaults, not for workers
and review services on several hosts, which must share ``KEEL_CONTROL_KEYS``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from streams.contracts.control import ControlKeys
from streams.core.errors import ConfigError
from streams.core.settings import Settings

LOCAL_KEY_ID = "local"
MIN_KEY_BYTES = 16


def load_control_keys(settings: Settings) -> ControlKeys:
    """Raises ``ConfigError`` for a key that is too short or a signing key id that is not listed."""
    configured = {key_id: secret.get_secret_value().encode() for key_id, secret in settings.control_keys.items()}
    if not configured:
        return ControlKeys(LOCAL_KEY_ID, {LOCAL_KEY_ID: _local_key(settings.state_dir / "control.key")})
    short = [key_id for key_id, secret in configured.items() if len(secret) < MIN_KEY_BYTES]
    if short:
        raise ConfigError(f"KEEL_CONTROL_KEYS: key(s) {', '.join(short)} shorter than {MIN_KEY_BYTES} bytes")
    signing = settings.control_signing_key_id or next(iter(configured))
    if signing not in configured:
        raise ConfigError(f"KEEL_CONTROL_SIGNING_KEY_ID {signing!r} is not one of KEEL_CONTROL_KEYS")
    return ControlKeys(signing, configured)


def _local_key(path: Path) -> bytes:
    """This machine's key: created once (readable by its owner only), then read by every process. It is
    written in full under another name and then linked into place, so no process reads it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(draft, path)
        draft.unlink()
    key = path.read_text().strip().encode()
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{path} holds no usable control key; delete it to make a new one")
    return key
