import pytest

from streams.agent.definition import ModelSpec, ReliabilityPolicy
from streams.core.errors import (
    ContextLengthExceeded,
    ModelRefused,
    OutputNotJson,
    OutputSchemaViolation,
    ProviderAuthError,
    ProviderConnectionError,
    ProviderRateLimited,
    ProviderRequestRejected,
    ProviderServerError,
    ProviderTimeout,
)
from streams.pipeline.fallback import Fallback, Position, Reask, Retry, Stop, backoff_s, decide, first_model

CHAIN = [
    ModelSpec(provider="a", model="small", max_retries=2, context_window=4096),
    ModelSpec(provider="b", model="medium", max_retries=1, context_window=8192),
    ModelSpec(provider="c", model="large", max_retries=0, context_window=128_000),
]
POLICY = ReliabilityPolicy(max_reasks=1, backoff_base_s=1.0, backoff_max_s=8.0)
START = Position(0)
NOTHING_OPEN: frozenset[int] = frozenset()


def _decide(error, position=START, *, remaining_s=60.0, unavailable=NOTHING_OPEN, policy=POLICY, jitter=0.5):
    return decide(
        error,
        chain=CHAIN,
        position=position,
        policy=policy,
        remaining_s=remaining_s,
        unavailable=unavailable,
        jitter=jitter,
    )


@pytest.mark.parametrize("error", [ProviderTimeout("t"), ProviderConnectionError("c"), ProviderServerError("500")])
def test_transient_failures_retry_with_backoff_then_fall_back(error) -> None:
    assert _decide(error) == Retry(0.5)  # jitter 0.5 of min(8, 1 * 2^0)
    assert _decide(error, Position(0, retries=1)) == Retry(1.0)
    assert _decide(error, Position(0, retries=2)) == Fallback(1)


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_s(n, POLICY, 1.0) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff_s(3, POLICY, 0.0) == 0.0


def test_a_retry_that_would_outlast_the_deadline_falls_back_instead() -> None:
    assert _decide(ProviderTimeout("t"), remaining_s=0.4) == Fallback(1)


def test_rate_limit_honours_retry_after_when_it_fits() -> None:
    assert _decide(ProviderRateLimited("429", retry_after_s=3.0)) == Retry(3.0)
    assert _decide(ProviderRateLimited("429", retry_after_s=30.0), remaining_s=10) == Fallback(1)
    assert _decide(ProviderRateLimited("429", retry_after_s=None)) == Retry(0.5)


def test_auth_and_rejected_requests_go_straight_to_the_next_model() -> None:
    assert _decide(ProviderAuthError("401")) == Fallback(1)
    assert _decide(ProviderRequestRejected("400"), Position(1)) == Fallback(2)


def test_context_length_skips_to_a_larger_window() -> None:
    chain_with_equal = [CHAIN[1], ModelSpec(provider="d", model="same", context_window=8192), CHAIN[2]]
    decision = decide(
        ContextLengthExceeded("too long"),
        chain=chain_with_equal,
        position=Position(0),
        policy=POLICY,
        remaining_s=60,
        unavailable=frozenset(),
        jitter=0.5,
    )
    assert decision == Fallback(2)


def test_refusal_follows_the_policy() -> None:
    assert _decide(ModelRefused("no")) == Fallback(1)
    assert _decide(ModelRefused("no"), policy=POLICY.model_copy(update={"on_refusal": "review"})) == Stop("review")


def test_invalid_answers_are_re_asked_with_the_problems_then_fall_back() -> None:
    decision = _decide(OutputSchemaViolation(["$.priority: 'asap' is not one of low, normal"]))
    assert isinstance(decision, Reask)
    assert "- $.priority: 'asap' is not one of low, normal" in decision.feedback
    assert _decide(OutputNotJson("prose"), Position(0, reasks=1)) == Fallback(1)


def test_open_circuits_are_skipped_and_the_end_of_the_chain_stops() -> None:
    assert _decide(ProviderAuthError("401"), unavailable=frozenset({1})) == Fallback(2)
    assert _decide(ProviderAuthError("401"), Position(2)) == Stop("dead_letter")
    assert _decide(ProviderTimeout("t"), Position(2)) == Stop("dead_letter")  # max_retries 0 on the last model


def test_first_model_fits_the_prompt_and_avoids_open_circuits() -> None:
    assert first_model(CHAIN, prompt_tokens=100, unavailable=frozenset()) == 0
    assert first_model(CHAIN, prompt_tokens=5000, unavailable=frozenset()) == 1
    assert first_model(CHAIN, prompt_tokens=100, unavailable=frozenset({0, 1})) == 2
    assert first_model(CHAIN, prompt_tokens=200_000, unavailable=frozenset()) is None
