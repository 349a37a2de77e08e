"""Keel over SASL OAUTHBEARER on a real broker: Keel's client-credentials token provider against a loopback
identity provider, tokens validated by Kafka's own OAuthBearerValidatorCallbackHandler (JWKS signature,
expiry, audience, issuer), the principal taken from the token's sub, and the ACLs `keel acl apply`
creates for it. Every Keel command here runs as a subprocess authenticated only by its token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.abc import AbstractTokenProvider
from harness import Stack, aggregator, run_through, worker_stack
from identity_provider import signing_key
from oauth_cluster import OAuthCluster
from secure_cluster import read_refused, text_files

from streams.agent.definition import load_agents
from streams.cli.local_stack import worker_process
from streams.cli.publish import load_samples, take
from streams.cli.usage_report import read_windows
from streams.contracts.acls import acl_plan
from streams.core.errors import KafkaAuthRejected
from streams.core.kafka_client import build_client_config
from streams.cost.usage_windows import MINUTE
from streams.kafka.acl_admin import apply_plan
from streams.kafka.connection import check_access
from tests.keel_command import run_keel

pytestmark = pytest.mark.integration
WRONG_SECRET = "canary-wrong-oauth-secret-7c2"


@pytest.fixture(scope="module")
def stack(oauth_kafka: OAuthCluster, sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Topics created as the (SCRAM) admin, then the plan's ACLs applied, as tests/integration/test_secure_broker.py."""
    cluster = oauth_kafka.secure
    with worker_stack(
        cluster.bootstrap, tmp_path_factory.mktemp("keel-oauth"), provider="sim", base_url=sim_url, start=False,
        namespace=cluster.namespace, security=cluster.security(),
    ) as stack:  # fmt: skip
        principals = acl_plan(load_agents(stack.settings.agents_dir, stack.catalogue), stack.settings)
        created, _ = apply_plan(cluster.client(), principals)
        assert created > 0
        for _ in range(40):  # the broker applies new ACLs from its metadata log a moment later
            if apply_plan(cluster.client(), principals) == (0, created):
                break
            time.sleep(0.25)
        yield stack


def keel(stack: Stack, env: dict[str, str], *args: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    """`keel ...` with none of this process's Kafka settings: only the stack's and ``env``'s."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_KAFKA_")}
    environment = {**inherited, **stack.worker_env, **env, "KEEL_BOOTSTRAP_SERVERS": stack.settings.bootstrap_servers,
                   "KEEL_NAMESPACE": stack.settings.namespace, "KEEL_STATE_DIR": str(stack.settings.state_dir)}  # fmt: skip
    return run_keel(*args, env=environment, timeout_s=timeout_s)


async def test_the_broker_accepts_a_token_of_its_provider_and_no_forged_one(oauth_kafka: OAuthCluster) -> None:
    """Keel's start-up check authenticates with a token; a token the provider did not sign, or signed
    for another audience, is refused by the broker's validator (the unsecured one would take both)."""
    assert await check_access(oauth_kafka.client("operator"), timeout_s=30)
    assert oauth_kafka.principal("operator") in oauth_kafka.idp.issued
    idp, operator = oauth_kafka.idp, oauth_kafka.principal("operator")
    forged = idp.sign(idp.claims(operator), key=signing_key())
    other_audience = idp.sign({**idp.claims(operator), "aud": "another-cluster"})
    for token in (forged, other_audience):
        config = build_client_config(
            oauth_kafka.security("operator"), bootstrap_servers=oauth_kafka.bootstrap, token_provider=FixedToken(token)
        )
        with pytest.raises(KafkaAuthRejected, match="refused OAUTHBEARER") as refused:
            await check_access(config, timeout_s=30)
        assert "KEEL_KAFKA_OAUTH_CLIENT_ID" in str(refused.value), refused.value


class FixedToken(AbstractTokenProvider):
    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token


def test_the_operator_runs_its_commands_with_a_token(stack: Stack, oauth_kafka: OAuthCluster) -> None:
    operator = oauth_kafka.environment("operator")
    for command in (["topics"], ["dlq", "list"]):
        done = keel(stack, operator, *command)
        assert done.returncode == 0, f"keel {' '.join(command)}: {done.stderr[-2000:]}"


async def test_a_worker_processes_events_as_its_token_principal(
    stack: Stack, oauth_kafka: OAuthCluster, samples_dir: Path
) -> None:
    """`keel worker` (its intake, producer, outcome store, budget owner and start-up ACL check through
    librdkafka's OIDC client) as the worker's principal; the outcomes read back as the admin."""
    events = {"support.tickets": take(load_samples(samples_dir / "support_triage.jsonl"), 6)}
    env = {**stack.worker_env, "KEEL_AGENTS": '["support_triage"]', **oauth_kafka.environment("worker-support_triage")}
    with worker_process(stack.settings, env) as worker:
        stack.worker = worker
        try:
            ids, tally = await run_through(stack, events=events)
            stack.check_worker()
        finally:
            stack.worker = None
    summary = tally.summary(ids)
    assert summary["events"] == 6 and summary["missing"] == 0 and summary["results"] > 0, summary
    assert summary["usage"] >= 6


async def test_the_aggregator_counts_usage_as_its_token_principal(stack: Stack, oauth_kafka: OAuthCluster) -> None:
    """faust's consumer (in a thread with its own event loop) and producer share one token provider.
    Runs after the worker test above (module order): it reads the usage that worker wrote."""
    with aggregator(stack, **oauth_kafka.environment("aggregator")) as aggregate:
        deadline = time.monotonic() + 120
        calls = 0
        while calls < 6 and time.monotonic() < deadline:
            assert aggregate.poll() is None, f"keel aggregate exited: see {stack.settings.state_dir}/logs"
            rows = await read_windows(stack.settings, MINUTE, dimension="agent")
            calls = sum(r.stats.calls for r in rows if r.value == "support_triage")
            await asyncio.sleep(1)
        assert aggregate.poll() is None, f"keel aggregate exited: see {stack.settings.state_dir}/logs"
    assert calls >= 6, f"the aggregator's windows hold {calls} calls"


def test_a_wrong_client_secret_is_one_error_naming_the_setting(stack: Stack, oauth_kafka: OAuthCluster) -> None:
    done = keel(stack, oauth_kafka.environment("operator", secret=WRONG_SECRET), "topics", timeout_s=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "KEEL_KAFKA_OAUTH_CLIENT_SECRET" in done.stderr and "HTTP 401" in done.stderr
    assert "Traceback" not in done.stderr
    assert WRONG_SECRET not in done.stdout + done.stderr
    assert oauth_kafka.oauth_client("operator").client_id in oauth_kafka.idp.refused


async def test_a_principal_without_acls_is_refused(stack: Stack, oauth_kafka: OAuthCluster) -> None:
    """The stranger authenticates (its token is valid) and may do nothing: the ACLs are per principal."""
    await read_refused(oauth_kafka.client("stranger"), stack.topic("support.tickets"))
    done = keel(stack, oauth_kafka.environment("stranger"), "dlq", "list", timeout_s=60)
    assert done.returncode == 2 and "may not read" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    # the worker's start-up ACL check (librdkafka, with its own OIDC client-credentials grant) names what is missing
    done = keel(stack, {"KEEL_AGENTS": '["support_triage"]', **oauth_kafka.environment("stranger")}, "worker")
    assert done.returncode == 2, done.stderr[-2000:]
    assert (
        "lacks ACLs" in done.stderr
        and f"READ on group keel-{stack.settings.namespace}-worker-support_triage" in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_no_client_secret_reaches_a_log(stack: Stack, oauth_kafka: OAuthCluster) -> None:
    """Runs last (module order): the worker, the aggregator, the commands and the refusals have logged."""
    logs = [*text_files(stack.settings.state_dir / "logs"), *text_files(oauth_kafka.secure.broker.log_dir)]
    assert len(logs) >= 3
    for path in logs:
        text = path.read_text(errors="replace")
        leaked = [s for s in [*oauth_kafka.secrets(), WRONG_SECRET] if s in text]
        assert not leaked, f"{path} holds a client secret"
