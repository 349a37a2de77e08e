"""Circuit breakers per (provider, model), shared by every agent of a worker.

After ``failure_threshold`` consecutive provider failures the circuit opens: the model is skipped at
once instead of costing each event a timeout. After ``cooldown_s`` one probe call is let through
(half-open); its success closes the circuit, its failure opens it for another cooldown. Only provider
failures count (timeouts, connection errors, 5xx, auth); a model that answers badly is working, and
one that answers 429 is busy, not broken: the rate limiter holds its calls instead (streams/pipeline/limiter.py).
An auth failure (401/403) opens the circuit at once: the key will not start working by itself, and the
open circuit, with ``last_failure`` = ``provider_auth``, is the signal an operator must act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False
    last_failure: str | None = None


@dataclass(frozen=True, slots=True)
class CircuitView:
    key: str
    state: CircuitState
    consecutive_failures: int
    open_for_s: float | None
    last_failure: str | None  # the reason code of the latest failure


class CircuitBreakers:
    def __init__(self, *, failure_threshold: int = 5, cooldown_s: float = 30.0) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._circuits: dict[str, _Circuit] = {}

    def state(self, key: str, now: float) -> CircuitState:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return CircuitState.CLOSED
        if now - circuit.opened_at >= self.cooldown_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allows(self, key: str, now: float) -> bool:
        """Whether a call may go out now; in half-open state only one probe at a time."""
        state = self.state(key, now)
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        circuit = self._circuits[key]
        if circuit.probing:
            return False
        circuit.probing = True
        return True

    def record_success(self, key: str) -> None:
        self._circuits.pop(key, None)

    def record_failure(self, key: str, now: float, *, reason: str = "provider_error", trip: bool = False) -> None:
        """``trip``: open the circuit now, whatever the count (a failure that will not go away by itself)."""
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        circuit.last_failure = reason
        if trip or circuit.probing or circuit.failures >= self.failure_threshold:
            circuit.opened_at = now
        circuit.probing = False

    def release(self, key: str) -> None:
        """A half-open probe ended without telling us anything about the provider (e.g. cancelled)."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.probing = False

    def snapshot(self, now: float) -> list[CircuitView]:
        return [
            CircuitView(
                key,
                self.state(key, now),
                circuit.failures,
                None if circuit.opened_at is None else now - circuit.opened_at,
                circuit.last_failure,
            )
            for key, circuit in sorted(self._circuits.items())
        ]
