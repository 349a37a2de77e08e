"""Users: who may log in to the review UI and API, and who may change which agent's configuration
(`keel agent`, `keel eval`), with which password.

The users file (YAML, ``KEEL_REVIEW_USERS_FILE``) holds no password, only an scrypt hash with a salt of
its own per user, so a leaked file does not give away passwords and equal passwords do not show::

    users:
      alice: {role: admin, password: "scrypt$131072$8$1$<salt>$<hash>"}
      bob: {role: reviewer, agents: [support_triage], password: "scrypt$..."}
      carol: {role: operator, agents: [support_triage], password: "scrypt$..."}

An admin reviews and configures every agent; a reviewer reviews their agents and configures none; an
operator deploys, promotes, rolls back and evaluates their agents and reviews none.

``keel review user add`` writes it. The file is read again when it changes, so a new or removed user
counts without restarting the server. A hash made at a lower cost than ``SCRYPT_COST`` (an older Keel's)
still verifies, and is replaced in the file at its user's next successful login.

API clients send their password with every call (HTTP Basic). A password that matched is remembered as
an HMAC under a key of the process's own, next to the stored hash it matched, so the next call costs one
HMAC instead of an scrypt (half a second of CPU); a changed password or a removed user no longer
matches. Failed checks are never remembered.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streams.core.config_file import load_model
from streams.core.errors import ConfigError

Role = Literal["admin", "reviewer", "operator"]
_SALT_BYTES = 16
_KEY_BYTES = 32
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScryptCost:
    n: int  # CPU and memory: 128 * n * r bytes
    r: int
    p: int

    def weaker_than(self, other: ScryptCost) -> bool:
        """Below ``other`` in some parameter and above it in none: worth re-hashing (never lowered)."""
        mine, theirs = (self.n, self.r, self.p), (other.n, other.r, other.p)
        return mine != theirs and all(a <= b for a, b in zip(mine, theirs, strict=True))


# The OWASP Password Storage Cheat Sheet's scrypt: N=2^17, r=8, p=1. 128 MiB and about half a second of
# one core per check: slow for guessing, once per login (API calls skip it, see UserFile).
SCRYPT_COST = ScryptCost(n=2**17, r=8, p=1)


class UsersFileError(ConfigError):
    reason = "review_users_invalid"


def hash_password(password: str, *, cost: ScryptCost = SCRYPT_COST) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64); the parameters travel with the hash so they can be raised."""
    return _hash(password, secrets.token_bytes(_SALT_BYTES), cost)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``, compared in constant time; a malformed hash never matches."""
    parsed = _parsed(stored)
    if parsed is None:
        return False
    cost, salt, expected = parsed
    try:
        actual = _scrypt(password, salt, cost)
    except ValueError:  # parameters scrypt refuses (n not a power of 2, ...)
        return False
    return hmac.compare_digest(actual, expected)


def hash_cost(stored: str) -> ScryptCost | None:
    """The parameters ``stored`` was made with; None for a malformed hash."""
    parsed = _parsed(stored)
    return None if parsed is None else parsed[0]


def _hash(password: str, salt: bytes, cost: ScryptCost) -> str:
    key = _scrypt(password, salt, cost)
    return f"scrypt${cost.n}${cost.r}${cost.p}${_b64(salt)}${_b64(key)}"


def _parsed(stored: str) -> tuple[ScryptCost, bytes, bytes] | None:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return None
        cost = ScryptCost(int(n), int(r), int(p))
        return cost, base64.b64decode(salt, validate=True), base64.b64decode(key, validate=True)
    except ValueError:
        return None


def _scrypt(password: str, salt: bytes, cost: ScryptCost) -> bytes:
    # OpenSSL's default limit is 32 MiB; the cost needs 128 * n * r * p (plus a little): say so explicitly.
    maxmem = 128 * cost.n * cost.r * cost.p + 1024 * 1024
    return hashlib.scrypt(password.encode(), salt=salt, n=cost.n, r=cost.r, p=cost.p, maxmem=maxmem, dklen=_KEY_BYTES)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@functools.cache
def _dummy_hash(cost: ScryptCost) -> str:
    """Checked when the user does not exist, so that an unknown name takes as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16), cost=cost)


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
    agents: frozenset[str]  # a reviewer's or an operator's agents; ignored for an admin
    password_fingerprint: str = field(repr=False)  # see ``password_fingerprint``

    def may_review(self, agent: str) -> bool:
        return self.role == "admin" or (self.role == "reviewer" and agent in self.agents)

    def may_configure(self, agent: str) -> bool:
        """Deploy, promote, roll back and evaluate versions of ``agent``."""
        return self.role == "admin" or (self.role == "operator" and agent in self.agents)

    def agent_filter(self) -> frozenset[str] | None:
        """What to ask the queue for: None (every agent) for an admin, nothing for an operator."""
        if self.role == "admin":
            return None
        return self.agents if self.role == "reviewer" else frozenset()


class UserFile:
    """The users file, read again whenever its modification time changes. ``cost``: the scrypt cost of
    new hashes; a weaker one is re-hashed at its user's next successful login (tests lower it)."""

    def __init__(self, path: Path, *, cost: ScryptCost = SCRYPT_COST) -> None:
        self.path = path
        self.cost = cost
        self._stamp: tuple[int, int, int] | None = None
        self._document = UsersDocument()
        self._key = secrets.token_bytes(32)
        self._matched: dict[str, tuple[str, bytes]] = {}  # name -> (stored hash, HMAC of the password)
        self._writing = threading.Lock()  # logins upgrade hashes from executor threads

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password is theirs; None otherwise (unknown names take as long). Blocks
        for an scrypt: call it in an executor."""
        entry = self._current().users.get(name)
        mac = hmac.digest(self._key, password.encode(), "sha256")
        if entry is None:
            verify_password(password, _dummy_hash(self.cost))  # as long as for a known name
            return None
        known = self._matched.get(name)
        if known is not None and known[0] == entry.password and hmac.compare_digest(known[1], mac):
            return _user(name, entry)
        if not verify_password(password, entry.password):
            return None
        self._matched[name] = (self._upgraded(name, entry.password, password), mac)  # one per user
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
        entry = UserEntry(password=hash_password(password, cost=self.cost), role=role, agents=sorted(agents))
        with self._writing:
            document = self._current().model_copy(deep=True)
            document.users[name] = entry
            self._write(document)

    def remove(self, name: str) -> bool:
        with self._writing:
            document = self._current().model_copy(deep=True)
            if document.users.pop(name, None) is None:
                return False
            self._write(document)
            return True

    def _upgraded(self, name: str, stored: str, password: str) -> str:
        """``stored``, or the hash at ``self.cost`` that replaced it in the file when it was weaker. The
        salt is kept: the hash changes, the password does not, and sessions go on (``password_fingerprint``)."""
        parsed = _parsed(stored)
        if parsed is None or not parsed[0].weaker_than(self.cost):
            return stored
        upgraded = _hash(password, parsed[1], self.cost)
        with self._writing:
            document = self._current().model_copy(deep=True)
            entry = document.users.get(name)
            if entry is None or entry.password != stored:  # changed meanwhile: the newer word wins
                return stored
            document.users[name] = entry.model_copy(update={"password": upgraded})
            try:
                self._write(document)
            except OSError as exc:  # a read-only file: the login still counts, the upgrade waits
                log.warning("could not upgrade %s's password hash in %s: %s", name, self.path, exc.strerror)
                return stored
        log.info("upgraded %s's password hash to scrypt n=%d r=%d p=%d", name, self.cost.n, self.cost.r, self.cost.p)
        return upgraded

    def _current(self) -> UsersDocument:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._document = None, UsersDocument()
            return self._document
        # Every write is a rename onto the path, so a new inode: a change shows even when the file's size
        # and its mtime (the kernel's clock moves in ticks of a few ms) are the same as before.
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
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


def password_fingerprint(stored: str) -> str:
    """What a session remembers of its user's password: a digest of the stored hash's salt. Every new
    password gets a new salt (``hash_password``) while a cost upgrade keeps it, so a session outlives a
    re-hash at login but not a password change, wherever it was made (the CLI, another process)."""
    parsed = _parsed(stored)
    return hashlib.sha256(stored.encode() if parsed is None else parsed[1]).hexdigest()[:32]


def _user(name: str, entry: UserEntry) -> User:
    return User(name, entry.role, frozenset(entry.agents), password_fingerprint(entry.password))
