"""Fixtures for tests against a real Kafka broker.

``kafka_bootstrap`` is the broker every integration test shares; ``settings``, a fresh namespace on it
with the shipped agents' topics (for the review service's tests); ``sim_url``, a provider simulator
for the module, and ``stack``, a worker stack on it, not started (modules with other needs define their own). Point ``KEEL_BOOTSTRAP_SERVERS`` at a
running cluster (for instance the one in deploy/compose.yaml) to use it as is; otherwise the session
starts its own single-node broker from the Maven jars on 127.0.0.1:29092 (``KEEL_TEST_BROKER_PORT`` moves
it, so that two checkouts can test at once), from a wiped state dir, and stops it at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Stack, worker_stack
from identity_provider import identity_provider
from oauth_cluster import AUDIENCE, OAuthCluster, oauth_clients
from review_broker import review_namespace
from secure_cluster import SecureCluster, planned_users, secure_broker, write_canary_passwords

from connectors.local.kafka_local import REPO_ROOT, LocalKafka, start, stop, wipe
from connectors.local.kafka_secure import OAuthValidation
from streams.cli.local_stack import simulator_process
from streams.core.settings import Settings

# Below Linux's ephemeral range (32768-60999): a port in it can be taken for a while by any client
# connection's source port, and Kafka would then fail to bind.
TEST_BROKER_PORT = int(os.environ.get("KEEL_TEST_BROKER_PORT", "29092"))
# The secured broker (tests/integration/secure_cluster.py) and its controller: the next two ports by default.
SECURE_BROKER_PORT = int(os.environ.get("KEEL_TEST_SECURE_BROKER_PORT", str(TEST_BROKER_PORT + 4)))
# The secured broker that also takes OAUTHBEARER (tests/integration/oauth_cluster.py), past the one above.
OAUTH_BROKER_PORT = int(os.environ.get("KEEL_TEST_OAUTH_BROKER_PORT", str(SECURE_BROKER_PORT + 2)))


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("KEEL_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = LocalKafka(port=TEST_BROKER_PORT, state_dir=REPO_ROOT / ".keel" / f"test-kafka-{TEST_BROKER_PORT}")
    with _session_lock(broker.state_dir.with_name(broker.state_dir.name + ".lock")):
        stop(broker, force=True)  # holding the lock, a running test broker is one a killed session left
        wipe(broker)
        start(broker)
        try:
            yield broker.bootstrap
        finally:
            stop(broker)


@pytest.fixture(scope="session")
def secure_kafka() -> Iterator[SecureCluster]:
    """A secured single-node broker of its own (SASL_SSL, SCRAM users, ACLs enforced), for the session."""
    cluster = secure_broker(SECURE_BROKER_PORT)
    with _fresh_secure(cluster):
        yield cluster


@contextlib.contextmanager
def _fresh_secure(cluster: SecureCluster) -> Iterator[None]:
    """The cluster's broker from empty storage, with canary passwords, until the block ends."""
    broker = cluster.broker
    with _session_lock(broker.state_dir.with_name(broker.state_dir.name + ".lock")):
        stop(broker, force=True)
        wipe(broker)
        write_canary_passwords(cluster.files, list(broker.users))
        start(broker)
        try:
            yield
        finally:
            stop(broker)


@pytest.fixture(scope="session")
def oauth_kafka() -> Iterator[OAuthCluster]:
    """A secured broker of its own that also takes OAUTHBEARER tokens from a loopback identity provider
    (one client per principal of the plan), validated against its JWKS; the provider outlives the broker."""
    namespace = f"oauth-{uuid.uuid4().hex[:6]}"
    with identity_provider(oauth_clients(planned_users(namespace)), audience=AUDIENCE) as idp:
        oauth = OAuthValidation(jwks_url=idp.jwks_url, audience=AUDIENCE, issuer=idp.issuer)
        cluster = secure_broker(OAUTH_BROKER_PORT, namespace=namespace, oauth=oauth)
        with _fresh_secure(cluster):
            yield OAuthCluster(cluster, idp)


@pytest.fixture
def settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    return review_namespace(kafka_bootstrap, tmp_path)


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with simulator_process(tmp_path_factory.mktemp("sim"), "--seed", "5") as url:
        yield url


@pytest.fixture
def stack(kafka_bootstrap: str, sim_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state_dir = tmp_path_factory.mktemp("keel-state")
    with worker_stack(kafka_bootstrap, state_dir, provider="sim", base_url=sim_url, start=False) as stack:
        yield stack


@contextlib.contextmanager
def _session_lock(path: Path) -> Iterator[None]:
    """One test session at a time owns the test broker; a second one (same checkout) waits here."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the kernel even if the session is killed
        yield
