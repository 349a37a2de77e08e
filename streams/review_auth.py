"""Reviewers: who may log in to the review UI and API, with which password, for which agents.

The users file (YAML, ``KEEL_REVIEW_USERS_FILE``) holds no password, only an scrypt hash with a salt of
its own per user, so a leaked file does not give away passwords and equal passwords do not show::

    users:
      alice: {role: admin, password: "scrypt$16384$8$1$<salt>$<hash>"}
      bob: {role: reviewer, agents: [support_triage], password: "scrypt$..."}

``keel review user add`` writes it. The file is read again when it changes, so a new or removed user
counts without restarting the server.

API clients send their password with every call (HTTP Basic). A password that matched is remembered as
an HMAC under a key of the process's own, next to the stored hash it matched, so the next call costs one
HMAC instead of an scrypt (tens of milliseconds of CPU); a changed password or a removed user no longer
matches. Failed checks are never remembered.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streams.config_file import load_model
from streams.errors import ConfigError

Role = Literal["admin", "reviewer"]
SCRYPT_N = 2**14  # about 16 MiB and a few tens of milliseconds per check: slow for guessing, fine per login
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32


class UsersFileError(ConfigError):
    reason = "review_users_invalid"


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64); the parameters travel with the hash so they can be raised."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``, compared in constant time; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = _scrypt(password, base64.b64decode(salt, validate=True), n=int(n), r=int(r), p=int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    maxmem = 128 * n * r * p + 1024 * 1024
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=_KEY_BYTES)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@functools.cache
def _dummy_hash() -> str:
    """Checked when the user does not exist, so that an unknown name takes as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


class UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(pattern=r"^scrypt\$")
    role: Role
    agents: list[str] = Field(default_factory=list)


class UsersDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: dict[str, UserEntry] = Field(default_factory=dict)

    @field_validator("users")
    @classmethod
    def _names(cls, users: dict[str, UserEntry]) -> dict[str, UserEntry]:
        for name in users:
            if not valid_username(name):
                raise ValueError(f"invalid user name {name!r} (letters, digits, . _ - only)")
        return users


def valid_username(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    agents: frozenset[str]  # a reviewer's agents; ignored for an admin

    def may_review(self, agent: str) -> bool:
        return self.role == "admin" or agent in self.agents

    def agent_filter(self) -> frozenset[str] | None:
        """What to ask the queue for: None (every agent) for an admin."""
        return None if self.role == "admin" else self.agents


class UserFile:
    """The users file, read again whenever its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._document = UsersDocument()
        self._key = secrets.token_bytes(32)
        self._matched: dict[str, tuple[str, bytes]] = {}  # name -> (stored hash, HMAC of the password)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password is theirs; None otherwise (unknown names take as long)."""
        entry = self._current().users.get(name)
        stored = entry.password if entry else _dummy_hash()
        mac = hmac.digest(self._key, password.encode(), "sha256")
        known = self._matched.get(name)
        if entry is None:
            verify_password(password, stored)  # as long as for a known name
            return None
        if known is not None and known[0] == stored and hmac.compare_digest(known[1], mac):
            return _user(name, entry)
        if not verify_password(password, stored):
            return None
        self._matched[name] = (stored, mac)  # one per user: bounded by the users file
        return _user(name, entry)

    def get(self, name: str) -> User | None:
        entry = self._current().users.get(name)
        return None if entry is None else _user(name, entry)

    def names(self) -> list[str]:
        return sorted(self._current().users)

    def put(self, name: str, *, password: str, role: Role, agents: list[str]) -> None:
        """Add or replace a user, writing the file (mode 0600) through a temporary file and a rename."""
        if not valid_username(name):
            raise UsersFileError(f"invalid user name {name!r} (letters, digits, . _ - only)")
        document = self._current().model_copy(deep=True)
        document.users[name] = UserEntry(password=hash_password(password), role=role, agents=sorted(agents))
        self._write(document)

    def remove(self, name: str) -> bool:
        document = self._current().model_copy(deep=True)
        if document.users.pop(name, None) is None:
            return False
        self._write(document)
        return True

    def _current(self) -> UsersDocument:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._document = None, UsersDocument()
            return self._document
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._document = load_model(self.path, UsersDocument, UsersFileError, what="review users file")
            self._stamp = stamp
        return self._document

    def _write(self, document: UsersDocument) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        text = yaml.safe_dump(document.model_dump(mode="json"), sort_keys=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        temporary.replace(self.path)
        self._stamp = None


def _user(name: str, entry: UserEntry) -> User:
    return User(name, entry.role, frozenset(entry.agents))
