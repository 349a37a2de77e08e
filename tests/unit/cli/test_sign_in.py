"""Who may change an agent's configuration: an admin, or an operator of that agent, who authenticated
against the users file. Reviewers review and operators configure; neither does the other's job."""

from __future__ import annotations

import argparse
import functools
import io
from pathlib import Path

import pytest
from review_http import TEST_COST

from streams.cli import sign_in
from streams.cli.main import main
from streams.core.errors import ChangeNotPermitted
from streams.core.settings import Settings
from streams.review.users import UserFile

PASSWORDS = {"ada": "ada-correct-horse", "olga": "olga-battery-staple", "rob": "rob-staple-battery"}


@pytest.fixture
def users_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    users = UserFile(tmp_path / "users.yaml", cost=TEST_COST)
    users.put("ada", password=PASSWORDS["ada"], role="admin", agents=[])
    users.put("olga", password=PASSWORDS["olga"], role="operator", agents=["support_triage"])
    users.put("rob", password=PASSWORDS["rob"], role="reviewer", agents=["support_triage"])
    monkeypatch.setattr(sign_in, "UserFile", functools.partial(UserFile, cost=TEST_COST))  # no re-hash at login
    return users.path


def attempt(users_file: Path, agent: str, *, user: str | None, password: str | None, stdin: bool = False) -> str:
    settings = Settings(review_users_file=users_file, user=user, password=None if stdin else password)
    args = argparse.Namespace(user=None, password_stdin=stdin)
    return sign_in.signed_in(args, settings, agent)


def test_an_admin_configures_every_agent_and_an_operator_their_own(users_file: Path) -> None:
    assert attempt(users_file, "invoice_extraction", user="ada", password=PASSWORDS["ada"]) == "ada"
    assert attempt(users_file, "support_triage", user="olga", password=PASSWORDS["olga"]) == "olga"
    with pytest.raises(ChangeNotPermitted, match=r"olga \(operator of support_triage\) may not change invoice"):
        attempt(users_file, "invoice_extraction", user="olga", password=PASSWORDS["olga"])


def test_a_reviewer_configures_nothing_and_an_operator_reviews_nothing(users_file: Path) -> None:
    with pytest.raises(ChangeNotPermitted, match=r"rob \(reviewer of support_triage\) may not change"):
        attempt(users_file, "support_triage", user="rob", password=PASSWORDS["rob"])
    users = UserFile(users_file, cost=TEST_COST)
    operator, reviewer = users.get("olga"), users.get("rob")
    assert operator is not None and reviewer is not None
    assert not operator.may_review("support_triage") and operator.agent_filter() == frozenset()
    assert reviewer.may_review("support_triage") and not reviewer.may_configure("support_triage")


@pytest.mark.parametrize("user, password", [("olga", "wrong-password"), ("nobody", "whatever-it-is"), (None, "x")])
def test_unknown_users_wrong_passwords_and_no_user_are_refused(
    users_file: Path, user: str | None, password: str
) -> None:
    expected = "KEEL_USER" if user is None else "unknown user .* or wrong password"
    with pytest.raises(ChangeNotPermitted, match=expected) as refused:
        attempt(users_file, "support_triage", user=user, password=password)
    assert password not in str(refused.value) or user is None


def test_the_password_comes_from_standard_input(users_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORDS["olga"] + "\n"))
    assert attempt(users_file, "support_triage", user="olga", password=None, stdin=True) == "olga"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, no KEEL_PASSWORD: no prompt either
    with pytest.raises(ChangeNotPermitted, match="--password-stdin or set KEEL_PASSWORD"):
        attempt(users_file, "support_triage", user="olga", password=None)


def test_keel_agent_refuses_before_it_reads_kafka(
    users_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused change is exit 2 naming why, and nothing reaches the broker (none runs here)."""
    monkeypatch.setenv("KEEL_REVIEW_USERS_FILE", str(users_file))
    monkeypatch.setenv("KEEL_USER", "rob")
    monkeypatch.setenv("KEEL_PASSWORD", PASSWORDS["rob"])
    monkeypatch.setattr("streams.cli.main.check_kafka_access", lambda settings: None)
    assert main(["agent", "rollback", "support_triage"]) == 2
    error = capsys.readouterr().err
    assert "rob (reviewer of support_triage) may not change support_triage" in error
    assert PASSWORDS["rob"] not in error
