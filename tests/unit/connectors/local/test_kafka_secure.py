"""The secured local broker's pure pieces: certificates, users, the properties laid over the plain broker's."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from connectors.local.kafka_local import LocalKafka
from connectors.local.kafka_secure import (
    ADMIN,
    SecureFiles,
    ensure_users,
    make_certificates,
    scram_arguments,
    secure_properties,
)
from streams.core.errors import ConfigError


def test_users_get_private_passwords_that_are_kept(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path)
    first = ensure_users(files, ["keel-worker-a"])
    assert set(first) == {ADMIN, "keel-worker-a"} and all(len(p) >= 24 for p in first.values())
    assert stat.S_IMODE(files.password_file(ADMIN).stat().st_mode) == 0o600
    assert ensure_users(files, ["keel-worker-a"]) == first
    assert scram_arguments({"u": "p"}) == ["--add-scram", "SCRAM-SHA-512=[name=u,password=p]"]
    with pytest.raises(ConfigError, match="SCRAM user names"):
        ensure_users(files, ["bad,name"])


def test_the_broker_listens_on_sasl_ssl_with_acls_enforced(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path)
    make_certificates(files)
    key_and_chain = files.broker_pem.read_text()
    assert key_and_chain.startswith("-----BEGIN PRIVATE KEY-----") and "BEGIN CERTIFICATE" in key_and_chain  # PKCS#8
    properties = secure_properties(files, port=19092, controller_port=19093, admin_password="pw")
    assert "listeners=SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in properties
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in properties
    assert "allow.everyone.if.no.acl.found=false" in properties
    assert "listener.name.controller.ssl.client.auth=required" in properties
    assert "ssl.keystore.type=PEM" in properties and "super.users=User:admin;User:keel-local-broker" in properties


def test_a_secured_local_broker_is_reached_as_admin(tmp_path: Path) -> None:
    broker = LocalKafka(port=19092, state_dir=tmp_path, secure=True)
    ensure_users(broker.secure_files, [])
    make_certificates(broker.secure_files)
    kwargs = broker.client.kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_plain_username"] == ADMIN
    assert LocalKafka(port=19092, state_dir=tmp_path).client.kwargs()["security_protocol"] == "PLAINTEXT"
