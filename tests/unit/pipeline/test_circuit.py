from streams.pipeline.circuit import CircuitBreakers, CircuitState

KEY = "sim/m"


def test_opens_after_consecutive_failures_and_a_success_resets() -> None:
    breakers = CircuitBreakers(failure_threshold=3, cooldown_s=10)
    breakers.record_failure(KEY, now=0)
    breakers.record_failure(KEY, now=1)
    breakers.record_success(KEY)
    breakers.record_failure(KEY, now=2)
    breakers.record_failure(KEY, now=3)
    assert breakers.state(KEY, now=3) is CircuitState.CLOSED
    breakers.record_failure(KEY, now=4)
    assert breakers.state(KEY, now=4) is CircuitState.OPEN
    assert not breakers.allows(KEY, now=5)
    [view] = breakers.snapshot(now=6)
    assert (view.key, view.state, view.consecutive_failures, view.open_for_s) == (KEY, CircuitState.OPEN, 3, 2)


def test_half_open_lets_one_probe_through_and_its_result_decides() -> None:
    breakers = CircuitBreakers(failure_threshold=1, cooldown_s=10)
    breakers.record_failure(KEY, now=0)
    assert breakers.state(KEY, now=10) is CircuitState.HALF_OPEN
    assert breakers.allows(KEY, now=10)
    assert not breakers.allows(KEY, now=10.1)  # one probe at a time
    breakers.record_failure(KEY, now=11)  # the probe failed: open for another cooldown
    assert breakers.state(KEY, now=20) is CircuitState.OPEN
    assert breakers.allows(KEY, now=21)
    breakers.record_success(KEY)
    assert breakers.state(KEY, now=21) is CircuitState.CLOSED and breakers.snapshot(now=21) == []


def test_a_released_probe_lets_the_next_one_through() -> None:
    breakers = CircuitBreakers(failure_threshold=1, cooldown_s=1)
    breakers.record_failure(KEY, now=0)
    assert breakers.allows(KEY, now=2)
    breakers.release(KEY)
    assert breakers.allows(KEY, now=2)


def test_models_are_independent() -> None:
    breakers = CircuitBreakers(failure_threshold=1, cooldown_s=10)
    breakers.record_failure("a/x", now=0)
    assert breakers.allows("b/x", now=0) and not breakers.allows("a/x", now=0)
