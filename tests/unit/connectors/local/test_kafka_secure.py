"""The secured local broker's pure pieces: certificates, users, the properties laid over the plain broker's."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from connectors.local.kafka_local import LocalKafka
from connectors.local.kafka_secure import (
    ADMIN,
    ALLOWED_URLS_PROPERTY,
    OAUTH_VALIDATOR,
    OAuthValidation,
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


def test_oauthbearer_is_off_unless_asked_for(tmp_path: Path) -> None:
    files = SecureFiles(tmp_path)
    properties = secure_properties(files, port=19092, controller_port=19093, admin_password="pw")
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512\n" in properties and "sasl.oauthbearer" not in properties
    assert LocalKafka(port=19092, state_dir=tmp_path, secure=True).oauth is None


def test_oauthbearer_tokens_are_validated_against_the_jwks(tmp_path: Path) -> None:
    oauth = OAuthValidation(
        jwks_url="http://127.0.0.1:8123/jwks", audience="keel-kafka", issuer="http://127.0.0.1:8123"
    )
    properties = secure_properties(SecureFiles(tmp_path), port=19092, controller_port=19093, admin_password="pw",
                                   oauth=oauth)  # fmt: skip
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512,OAUTHBEARER" in properties
    assert "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512" in properties
    assert f"listener.name.sasl_ssl.oauthbearer.sasl.server.callback.handler.class={OAUTH_VALIDATOR}" in properties
    assert "sasl.oauthbearer.jwks.endpoint.url=http://127.0.0.1:8123/jwks" in properties
    assert "sasl.oauthbearer.expected.audience=keel-kafka" in properties
    assert "sasl.oauthbearer.expected.issuer=http://127.0.0.1:8123" in properties
    assert "Unsecured" not in properties  # the validator that takes any token
    assert oauth.jvm_options() == [f"-D{ALLOWED_URLS_PROPERTY}=http://127.0.0.1:8123/jwks"]


def test_oauth_values_cannot_break_out_of_their_property_line(tmp_path: Path) -> None:
    for jwks_url, audience in (("http://idp/jwks\nsuper.users=User:x", "a"), ("file:///jwks", "a"),
                               ("http://idp/jwks,http://other", "a"), ("http://idp/jwks", "a b")):  # fmt: skip
        with pytest.raises(ConfigError, match="OAuth"):
            OAuthValidation(jwks_url=jwks_url, audience=audience, issuer="http://idp")
    oauth = OAuthValidation(jwks_url="http://idp/jwks", audience="a", issuer="http://idp")
    with pytest.raises(ConfigError, match="secured broker"):
        LocalKafka(port=19092, state_dir=tmp_path, oauth=oauth)
