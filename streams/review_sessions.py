"""Logged-in browser sessions of the review UI, and the brake on repeated failed logins.

A session is a random id in a cookie pointing into a table kept here on the server (so logging out or
expiring really ends it), with a CSRF token of its own that every form the UI posts must carry back.
It ends when idle for ``idle_timeout_s``, at ``max_age_s`` after the login however busy, and when its
user's password changes (the fingerprint it recorded at login no longer matches; streams/review_web.py).
In memory: restarting the review server logs everyone out, which is the safe direction.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SESSION_COOKIE = "keel_review_session"
IDLE_TIMEOUT_S = 8 * 3600.0
MAX_AGE_S = 12 * 3600.0


@dataclass(slots=True)
class Session:
    session_id: str
    username: str
    csrf_token: str
    password_fingerprint: str  # the user's at login (streams/review_auth.py): a new password ends the session
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


class LoginThrottle:
    """Failed logins per user name and per client address over a sliding window.

    Each failure costs the client ``failure_delay_s`` before the answer (a brake on guessing that an
    honest typo hardly notices); past ``max_failures`` in ``window_s`` for the name or the address, logins
    are refused without checking the password until the window has moved on.
    """

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_s: float = 300.0,
        failure_delay_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.failure_delay_s = failure_delay_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, username: str, address: str) -> bool:
        return any(len(self._recent(key)) >= self.max_failures for key in _keys(username, address))

    def failed(self, username: str, address: str) -> None:
        if len(self._failures) > 10_000:  # keep memory bounded under a spray of made-up names
            self._failures = {key: times for key in list(self._failures) if (times := self._recent(key))}
        for key in _keys(username, address):
            self._failures.setdefault(key, deque()).append(self._clock())

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"user:{username}", None)

    def __len__(self) -> int:
        """Names and addresses with failures on record."""
        return len(self._failures)

    def _recent(self, key: str) -> deque[float]:
        """The key's failures within the window (the older ones dropped); empty for a key never failed."""
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = self._clock() - self.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return times


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"user:{username[:64]}", f"addr:{address}"
