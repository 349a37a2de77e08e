"""A source's request rate limit: a token bucket that starts full (a sender may burst up to
``burst_s`` worth of its rate), refilled at ``per_minute``. Pure: the caller passes the time."""

from __future__ import annotations


class RequestBucket:
    def __init__(self, per_minute: float, *, now: float, burst_s: float = 10.0) -> None:
        self._rate_per_s = per_minute / 60.0
        self._capacity = max(1.0, self._rate_per_s * burst_s)
        self._tokens, self._at = self._capacity, now

    def take(self, now: float) -> float:
        """0 when a request may go now (and it is counted), else the seconds until one may."""
        self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate_per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate_per_s
