"""Reviewers' passwords, the users file and its CLI, sessions and the login throttle."""

from __future__ import annotations

import functools
import io
import itertools
import os
import stat
from pathlib import Path

import pytest
import yaml
from review_http import TEST_COST

from streams.cli import review_users as review_users_cli
from streams.cli.main import main
from streams.review import users as review_auth
from streams.review.sessions import LoginThrottle, SessionTable, csrf_matches
from streams.review.users import (
    SCRYPT_COST,
    ScryptCost,
    UserFile,
    UsersFileError,
    hash_cost,
    hash_password,
    verify_password,
)


def test_a_hash_is_salted_and_verifies_only_its_password() -> None:
    first, second = hash_password("s3cret-pass", cost=TEST_COST), hash_password("s3cret-pass", cost=TEST_COST)
    assert first != second  # a salt of its own per hash
    assert first.startswith("scrypt$1024$8$1$")
    assert "s3cret-pass" not in first
    assert verify_password("s3cret-pass", first)
    assert verify_password("s3cret-pass", second)
    assert not verify_password("s3cret-pasS", first)
    assert not verify_password("", first)


@pytest.mark.parametrize("stored", ["", "plain-text", "scrypt$1$2$3$4$5", "bcrypt$x$y$z$a$b", "scrypt$16384$8$1$!!$!!"])
def test_a_malformed_hash_never_matches(stored: str) -> None:
    assert not verify_password("anything", stored)


def test_the_users_file_holds_no_password_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "reviewers.yaml", cost=TEST_COST)
    users.put("bob", password="bobs-password-1", role="reviewer", agents=["support_triage"])
    text = users.path.read_text()
    assert "bobs-password-1" not in text
    assert "scrypt$" in text
    assert stat.S_IMODE(users.path.stat().st_mode) == 0o600
    bob = users.authenticate("bob", "bobs-password-1")
    assert bob is not None
    assert bob.may_review("support_triage")
    assert not bob.may_review("invoice_extraction")
    assert users.authenticate("bob", "bobs-password-2") is None
    assert users.authenticate("alice", "bobs-password-1") is None


def test_an_admin_reviews_every_agent(tmp_path: Path) -> None:
    users = UserFile(tmp_path / "reviewers.yaml", cost=TEST_COST)
    users.put("ada", password="adas-password", role="admin", agents=[])
    ada = users.get("ada")
    assert ada is not None
    assert ada.may_review("anything")
    assert ada.agent_filter() is None


def test_the_file_is_read_again_when_another_process_changes_it(tmp_path: Path) -> None:
    path = tmp_path / "reviewers.yaml"
    server_view, cli_view = UserFile(path, cost=TEST_COST), UserFile(path, cost=TEST_COST)
    assert server_view.get("bob") is None
    cli_view.put("bob", password="bobs-password-1", role="reviewer", agents=["a"])
    assert server_view.get("bob") is not None
    UserFile(path, cost=TEST_COST).remove("bob")
    assert server_view.get("bob") is None


def test_a_rewrite_shows_even_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    """The kernel's file clock moves in ticks: two writes in one tick leave the mtime as it was."""
    path = tmp_path / "reviewers.yaml"
    cli = UserFile(path, cost=TEST_COST)
    cli.put("bob", password="bobs-password-1", role="reviewer", agents=["a"])
    server = UserFile(path, cost=TEST_COST)
    before = server.get("bob")
    stat_before = path.stat()
    cli.put("bob", password="bobs-password-2", role="reviewer", agents=["a"])
    os.utime(path, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
    assert path.stat().st_size == stat_before.st_size
    after = server.get("bob")
    assert before is not None and after is not None
    assert after.password_fingerprint != before.password_fingerprint


@pytest.mark.parametrize(
    "text", ["users: {bob: {password: plain, role: reviewer}}", "users: {bob: {password: 'scrypt$x', role: god}}", "["]
)
def test_an_invalid_users_file_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "reviewers.yaml"
    path.write_text(text)
    with pytest.raises(UsersFileError, match=r"reviewers\.yaml"):
        UserFile(path, cost=TEST_COST).get("bob")


def test_invalid_user_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsersFileError):
        UserFile(tmp_path / "u.yaml", cost=TEST_COST).put("bob smith", password="long-enough", role="admin", agents=[])


def _cli(monkeypatch: pytest.MonkeyPatch, path: Path, args: list[str], stdin: str = "") -> int:
    monkeypatch.setenv("KEEL_REVIEW_USERS_FILE", str(path))
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    monkeypatch.setattr(review_users_cli, "UserFile", functools.partial(UserFile, cost=TEST_COST))
    return main(["review", "user", *args])


def test_cli_adds_lists_and_removes_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "reviewers.yaml"
    add = ["add", "bob", "--role", "reviewer", "--agents", "support_triage, invoice_extraction", "--password-stdin"]
    assert _cli(monkeypatch, path, add, "bobs-password-1\n") == 0
    bob = UserFile(path, cost=TEST_COST).authenticate("bob", "bobs-password-1")
    assert bob is not None
    assert bob.agents == {"support_triage", "invoice_extraction"}
    assert "bobs-password-1" not in path.read_text()
    assert _cli(monkeypatch, path, ["list"]) == 0
    assert "bob\treviewer\tinvoice_extraction,support_triage" in capsys.readouterr().out
    assert _cli(monkeypatch, path, ["remove", "bob"]) == 0
    assert UserFile(path, cost=TEST_COST).get("bob") is None
    add = ["add", "olga", "--role", "operator", "--agents", "support_triage", "--password-stdin"]
    assert _cli(monkeypatch, path, add, "olgas-password\n") == 0
    olga = UserFile(path, cost=TEST_COST).get("olga")
    assert olga is not None and olga.may_configure("support_triage") and not olga.may_review("support_triage")


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["add", "bob", "--role", "reviewer", "--password-stdin"], "long-enough-pw\n"),  # no agents
        (["add", "bob", "--role", "operator", "--password-stdin"], "long-enough-pw\n"),  # no agents
        (["add", "bob", "--role", "admin", "--password-stdin"], "short\n"),
    ],
)
def test_cli_refuses_a_reviewer_without_agents_and_a_short_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], stdin: str
) -> None:
    path = tmp_path / "reviewers.yaml"
    assert _cli(monkeypatch, path, args, stdin) == 2
    assert not path.exists()


def test_cli_prompts_twice_for_the_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["first-password", "other-password"])
    monkeypatch.setattr("getpass.getpass", lambda _prompt: next(answers))
    assert _cli(monkeypatch, tmp_path / "u.yaml", ["add", "ada", "--role", "admin"]) == 2
    answers = iter(["same-password", "same-password"])
    assert _cli(monkeypatch, tmp_path / "u.yaml", ["add", "ada", "--role", "admin"]) == 0
    assert UserFile(tmp_path / "u.yaml", cost=TEST_COST).authenticate("ada", "same-password") is not None


def test_sessions_expire_when_idle_and_end_on_close() -> None:
    now = [0.0]
    table = SessionTable(idle_timeout_s=10, clock=lambda: now[0])
    session = table.open("bob", password_fingerprint="f")
    now[0] = 9
    assert table.find(session.session_id) is session  # use restarts the idle clock
    now[0] = 18
    assert table.find(session.session_id) is session
    now[0] = 28.5
    assert table.find(session.session_id) is None
    other = table.open("bob", password_fingerprint="f")
    assert other.session_id != session.session_id
    assert other.csrf_token != session.csrf_token
    table.close(other.session_id)
    assert table.find(other.session_id) is None
    assert table.find(None) is None


def test_a_session_ends_at_its_maximum_age_however_busy() -> None:
    now = [0.0]
    table = SessionTable(idle_timeout_s=10, max_age_s=25, clock=lambda: now[0])
    session = table.open("bob", password_fingerprint="f")
    for now[0] in (9, 18, 24.5):
        assert table.find(session.session_id) is session
    now[0] = 25
    assert table.find(session.session_id) is None
    assert len(table) == 0


def test_a_new_password_has_a_new_fingerprint_and_an_upgrade_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "reviewers.yaml"
    users = UserFile(path, cost=TEST_COST)
    users.put("bob", password="bobs-password-1", role="reviewer", agents=["a"])
    first = users.get("bob")
    users.put("bob", password="bobs-password-1", role="reviewer", agents=["a"])  # `user add` again, same password
    again = users.get("bob")
    assert first is not None and again is not None
    assert first.password_fingerprint != again.password_fingerprint
    upgrading = UserFile(path, cost=ScryptCost(n=2**11, r=8, p=1))
    assert upgrading.authenticate("bob", "bobs-password-1") == again
    assert hash_cost(_stored(path, "bob")) == ScryptCost(n=2**11, r=8, p=1)
    assert users.get("bob") == again  # re-hashed, same fingerprint
    assert "password_fingerprint" not in repr(again)


def test_csrf_token_comparison() -> None:
    session = SessionTable().open("bob", password_fingerprint="f")
    assert csrf_matches(session, session.csrf_token)
    assert not csrf_matches(session, None)
    assert not csrf_matches(session, "")
    assert not csrf_matches(session, session.csrf_token[:-1] + "x")


def test_throttle_counts_failures_per_name_and_per_address_in_a_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.reserve("bob", "10.0.0.1") is not None  # reserved: counted as failed
    assert throttle.blocked("bob", "10.0.0.2")  # the name, from anywhere (backed off)
    assert throttle.blocked("alice", "10.0.0.1")  # the address, for any name
    assert not throttle.blocked("alice", "10.0.0.2")
    assert throttle.reserve("alice", "10.0.0.1") is None  # refused, and nothing counted for alice
    assert not throttle.blocked("alice", "10.0.0.2")
    now[0] = 61
    assert not throttle.blocked("bob", "10.0.0.1")


def test_a_success_takes_its_reservation_back_and_clears_the_name() -> None:
    throttle = LoginThrottle(max_failures=3, window_s=60, clock=lambda: 0.0)
    assert throttle.reserve("bob", "10.0.0.1") is not None
    assert throttle.reserve("bob", "10.0.0.1") is not None
    attempt = throttle.reserve("bob", "10.0.0.1")
    assert attempt is not None
    throttle.succeeded(attempt)
    assert not throttle.blocked("bob", "10.0.0.2")  # the name starts afresh
    assert not throttle.blocked("alice", "10.0.0.1")  # two failures left on the address, not three
    assert throttle.reserve("alice", "10.0.0.1") is not None
    assert throttle.blocked("alice", "10.0.0.1")


def test_a_users_back_off_doubles_up_to_its_bound_and_then_lets_the_right_password_in() -> None:
    """Failures from ever new addresses (never the address limit): only the name's back-off holds them."""
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window_s=60, backoff_base_s=10, backoff_max_s=40, clock=lambda: now[0])
    addresses = (f"198.51.{n // 256}.{n % 256}" for n in itertools.count())
    for _ in range(2):
        assert throttle.reserve("bob", next(addresses)) is not None
    assert not throttle.blocked("bob", next(addresses))  # below the limit: no back-off yet
    waits = []
    for _ in range(5):
        assert throttle.reserve("bob", next(addresses)) is not None
        began = now[0]
        while throttle.blocked("bob", next(addresses)):
            now[0] += 1
        waits.append(now[0] - began)
    assert waits == [10, 20, 40, 40, 40]  # doubling, bounded
    attempt = throttle.reserve("bob", "203.0.113.7")  # the right password, from elsewhere, after the back-off
    assert attempt is not None
    throttle.succeeded(attempt)
    assert not throttle.blocked("bob", "203.0.113.8")
    assert throttle.reserve("bob", next(addresses)) is not None  # and the count started afresh
    assert not throttle.blocked("bob", next(addresses))


def test_a_users_failures_are_forgotten_after_a_quiet_spell() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window_s=60, backoff_base_s=10, backoff_max_s=40, clock=lambda: now[0])
    for n in range(3):
        throttle.reserve("bob", f"10.0.0.{n}")
    now[0] = 10 + 39  # the back-off is over, but the count still stands: the next failure closes it again
    throttle.reserve("bob", "10.0.1.1")
    assert throttle.blocked("bob", "10.0.1.2")
    now[0] = 49 + 20 + 40  # that back-off (20 s) is over, and 40 s have passed without failures
    throttle.reserve("bob", "10.0.1.3")
    assert not throttle.blocked("bob", "10.0.1.4")  # one failure of a fresh count


def test_throttle_memory_holds_failures_only_and_sheds_old_ones() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window_s=60, backoff_max_s=900, clock=lambda: now[0])
    assert not any(throttle.blocked(f"name-{n}", "10.0.0.1") for n in range(1000))
    assert len(throttle) == 0  # checking records nothing
    for n in range(10_001):
        throttle.reserve(f"name-{n}", f"10.{n // 256}.{n % 256}.9")
    assert len(throttle) == 20_002
    now[0] = 1000  # past the window and the names' memory
    throttle.reserve("bob", "10.0.0.1")
    assert len(throttle) == 2  # the spray's failures no longer counted and were dropped


def test_a_matched_password_is_checked_once_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = UserFile(tmp_path / "reviewers.yaml", cost=TEST_COST)
    users.put("bob", password="bobs-password-1", role="reviewer", agents=["a"])
    checks: list[str] = []
    real = review_auth.verify_password
    monkeypatch.setattr(review_auth, "verify_password", lambda p, s: checks.append(p) or real(p, s))
    assert users.authenticate("bob", "bobs-password-1") is not None
    assert users.authenticate("bob", "bobs-password-1") is not None
    assert checks == ["bobs-password-1"]  # the second call: no scrypt
    assert users.authenticate("bob", "wrong-password") is None and checks[-1] == "wrong-password"
    assert users.authenticate("bob", "bobs-password-1") is not None and len(checks) == 2  # still remembered
    users.put("bob", password="bobs-password-2", role="reviewer", agents=["a"])
    assert users.authenticate("bob", "bobs-password-1") is None  # the old password no longer counts
    assert users.authenticate("bob", "bobs-password-2") is not None
    users.remove("bob")
    assert users.authenticate("bob", "bobs-password-2") is None


def test_the_default_cost_is_owasps_and_a_weaker_hash_is_upgraded_at_the_next_login(tmp_path: Path) -> None:
    """OWASP's Password Storage Cheat Sheet: scrypt N=2^17, r=8, p=1 (128 MiB: above OpenSSL's default
    memory limit, so this also proves the explicit maxmem)."""
    assert ScryptCost(n=2**17, r=8, p=1) == SCRYPT_COST
    assert hash_password("s3cret-pass").startswith("scrypt$131072$8$1$")
    path = tmp_path / "reviewers.yaml"
    UserFile(path, cost=ScryptCost(n=2**14, r=8, p=1)).put(
        "bob", password="bobs-password-1", role="reviewer", agents=["a"]
    )
    old = path.read_text()
    assert "scrypt$16384$8$1$" in old
    server = UserFile(path)  # the default cost
    assert server.authenticate("bob", "wrong-password") is None
    assert path.read_text() == old  # only a login that proved the password rewrites its hash
    bob = server.authenticate("bob", "bobs-password-1")
    assert bob is not None and bob.agents == {"a"}
    stored = _stored(path, "bob")
    assert hash_cost(stored) == SCRYPT_COST
    assert stored.split("$")[4] == _stored_text(old).split("$")[4]  # the same salt: the password did not change
    assert verify_password("bobs-password-1", stored)
    assert UserFile(path).authenticate("bob", "bobs-password-1") is not None  # another process reads it too


def test_hashes_are_only_ever_strengthened() -> None:
    assert ScryptCost(n=2**14, r=8, p=1).weaker_than(SCRYPT_COST)
    assert not SCRYPT_COST.weaker_than(SCRYPT_COST)
    assert not SCRYPT_COST.weaker_than(TEST_COST)  # a test's cheap cost never lowers a real hash
    assert not ScryptCost(n=2**18, r=4, p=1).weaker_than(SCRYPT_COST)  # not below in every respect


def test_a_login_still_works_when_the_upgrade_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "reviewers.yaml"
    UserFile(path, cost=TEST_COST).put("bob", password="bobs-password-1", role="reviewer", agents=["a"])
    old = path.read_text()
    server = UserFile(path, cost=ScryptCost(n=2**11, r=8, p=1))

    def read_only(_document: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(server, "_write", read_only)
    assert server.authenticate("bob", "bobs-password-1") is not None
    assert path.read_text() == old


def _stored(path: Path, name: str) -> str:
    return _stored_text(path.read_text(), name)


def _stored_text(text: str, name: str = "bob") -> str:
    return str(yaml.safe_load(text)["users"][name]["password"])
