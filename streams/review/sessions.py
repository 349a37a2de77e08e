"""Logged-in browser sessions of the review UI, and the brakes on guessing passwords: the login throttle
and the bound on concurrent password checks.

A session is a random id in a cookie pointing into a table kept here on the server (so logging out or
expiring really ends it), with a CSRF token of its own that every form the UI posts must carry back.
It ends when idle for ``idle_timeout_s``, at ``max_age_s`` after the login however busy, and when its
user's password changes (the fingerprint it recorded at login no longer matches; streams/review/web/app.py).
In memory: restarting the review server logs everyone out, which is the safe direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

SESSION_COOKIE = "keel_review_session"
IDLE_TIMEOUT_S = 8 * 3600.0
MAX_AGE_S = 12 * 3600.0


@dataclass(slots=True)
class Session:
    session_id: str
    username: str
    csrf_token: str
    password_fingerprint: str  # the user's at login (streams/review/users.py): a new password ends the session
    expires_at_s: float  # monotonic: idle until then, or gone
    ends_at_s: float  # monotonic: gone then however busy (the absolute lifetime)


class SessionTable:
    """Sessions by id; one idle for ``idle_timeout_s``, or older than ``max_age_s``, is gone."""

    def __init__(
        self,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions: dict[str, Session] = {}
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self._clock = clock

    def open(self, username: str, *, password_fingerprint: str) -> Session:
        self._prune()
        now = self._clock()
        session = Session(
            secrets.token_urlsafe(32),
            username,
            secrets.token_urlsafe(32),
            password_fingerprint,
            expires_at_s=min(now + self.idle_timeout_s, now + self.max_age_s),
            ends_at_s=now + self.max_age_s,
        )
        self._sessions[session.session_id] = session
        return session

    def find(self, session_id: str | None) -> Session | None:
        """The live session with this id (its idle clock restarts, up to its end), or None."""
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            return None
        now = self._clock()
        if session.expires_at_s <= now:
            del self._sessions[session.session_id]
            return None
        session.expires_at_s = min(now + self.idle_timeout_s, session.ends_at_s)
        return session

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _prune(self) -> None:
        now = self._clock()
        for expired in [s.session_id for s in self._sessions.values() if s.expires_at_s <= now]:
            del self._sessions[expired]


def csrf_matches(session: Session, submitted: str | None) -> bool:
    return tokens_match(session.csrf_token, submitted)


def tokens_match(expected: str, submitted: str | None) -> bool:
    """A form's token against the one the server handed out, in constant time; nothing matches none."""
    return bool(expected) and submitted is not None and hmac.compare_digest(expected.encode(), submitted.encode())


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login the throttle let through to the password check, already counted as a failure."""

    username_key: str
    address_key: str
    at_s: float  # monotonic


@dataclass(slots=True)
class _Backoff:
    failures: int  # in a row, since the name's last success
    until_s: float  # monotonic: the name is closed until then


class LoginThrottle:
    """The brake on guessing passwords: per client address over a sliding window, per user name by an
    exponential back-off.

    An attempt is reserved, i.e. counted as a failure, before its password is checked (``reserve``), and
    only a success takes it back (``succeeded``): parallel guesses cannot all pass the check together
    while the first ones are still being verified. Each failure costs the client ``failure_delay_s``
    before the answer (a brake an honest typo hardly notices).

    - An address past ``max_failures`` in ``window_s`` is refused, for any name, until the window moves.
    - A name past ``max_failures`` failures in a row is closed, from every address, for ``backoff_base_s``
      after its latest failure, doubling with each further one up to ``backoff_max_s``; its count is
      forgotten after ``backoff_max_s`` without failures once the back-off is over, or at a success. So
      a guesser gets ever fewer tries, and a known user is never locked out for good: once the back-off
      has passed, the right password works from anywhere.
    """

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_s: float = 300.0,
        failure_delay_s: float = 0.5,
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.failure_delay_s = failure_delay_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}  # address key -> failure times, oldest first
        self._backoffs: dict[str, _Backoff] = {}  # username key -> its back-off

    def blocked(self, username: str, address: str) -> bool:
        user_key, address_key = _keys(username, address)
        backoff = self._backoff(user_key)
        return len(self._recent(address_key)) >= self.max_failures or (
            backoff is not None and self._clock() < backoff.until_s
        )

    def reserve(self, username: str, address: str) -> Attempt | None:
        """The attempt, counted as a failed login of ``username`` from ``address`` until it succeeds; None
        (nothing counted) while either is blocked. No await between the check and the count: atomic."""
        if self.blocked(username, address):
            return None
        self._bound_memory()
        now = self._clock()
        user_key, address_key = _keys(username, address)
        self._failures.setdefault(address_key, deque()).append(now)
        backoff = self._backoffs.setdefault(user_key, _Backoff(0, now))
        backoff.failures += 1
        beyond = backoff.failures - self.max_failures
        backoff.until_s = now if beyond < 0 else now + min(self.backoff_base_s * 2**beyond, self.backoff_max_s)
        return Attempt(user_key, address_key, now)

    def succeeded(self, attempt: Attempt) -> None:
        """The attempt was a login after all: it leaves its address's count, and its name starts afresh."""
        times = self._failures.get(attempt.address_key)
        if times is not None and attempt.at_s in times:
            times.remove(attempt.at_s)
        self._backoffs.pop(attempt.username_key, None)

    def __len__(self) -> int:
        """Names and addresses with failures on record."""
        return len(self._failures) + len(self._backoffs)

    def _bound_memory(self) -> None:
        """Keep memory bounded under a spray of made-up names or addresses: forget what no longer counts."""
        if len(self._failures) > 10_000:
            self._failures = {key: times for key in list(self._failures) if (times := self._recent(key))}
        if len(self._backoffs) > 10_000:
            self._backoffs = {key: b for key in list(self._backoffs) if (b := self._backoff(key)) is not None}

    def _backoff(self, user_key: str) -> _Backoff | None:
        """The name's back-off while it still counts (a forgotten one dropped)."""
        backoff = self._backoffs.get(user_key)
        if backoff is not None and self._clock() >= backoff.until_s + self.backoff_max_s:
            del self._backoffs[user_key]
            return None
        return backoff

    def _recent(self, key: str) -> deque[float]:
        """The key's failures within the window (the older ones dropped); empty for a key never failed."""
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = self._clock() - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return times


@dataclass(slots=True)
class _Slots:
    semaphore: asyncio.Semaphore
    users: int = 0  # holding a slot or waiting for one


class CheckSlots:
    """At most ``per_address`` password checks at once per client address; further ones wait their turn
    (the throttle's reservations bound how many can wait). Each check is an scrypt of 128 MiB and half a
    second of a core, in an executor thread: one address must not take every thread and core."""

    def __init__(self, *, per_address: int = 2) -> None:
        self.per_address = per_address
        self._slots: dict[str, _Slots] = {}

    @contextlib.asynccontextmanager
    async def slot(self, address: str) -> AsyncIterator[None]:
        slots = self._slots.setdefault(address, _Slots(asyncio.Semaphore(self.per_address)))
        slots.users += 1
        try:
            async with slots.semaphore:
                yield
        finally:
            slots.users -= 1
            if slots.users == 0:  # nobody holds one or waits: forget the address
                del self._slots[address]

    def __len__(self) -> int:
        """Addresses with a check running or waiting."""
        return len(self._slots)


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username[:64]}", f"addr:{address}"
