"""Logging in under attack: who the client is behind a proxy, the throttle's reservations, the bound on
concurrent password checks, and the per-user back-off (over a real HTTP server on loopback)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from ipaddress import ip_network
from pathlib import Path

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from review_fakes import InMemoryReviewService, make_item
from review_http import ADMIN, ADMIN_PASSWORD, basic, make_users

from streams.apps.review.shell import build_web_app as serve_web_app
from streams.core.settings import Settings
from streams.review.sessions import CheckSlots, LoginThrottle
from streams.review.users import User, UserFile
from streams.review.web.app import build_web_app
from streams.review.web.context import CONTEXT, forwarded_client

PROXY = [ip_network("10.0.0.0/24"), ip_network("2001:db8::/64")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # not a proxy: the header is the client's word
        ("10.0.0.2", [], "10.0.0.2"),  # a proxy that sent no header
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # the client prepended a lie
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.7"], "198.51.100.1"),  # through two proxies
        ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # two headers: in order
        ("10.0.0.2", ["10.0.0.8, 10.0.0.7"], "10.0.0.8"),  # only proxies: the farthest
        ("10.0.0.2", ["6.6.6.6, not-an-ip"], "10.0.0.2"),  # garbage: stop at the last sure proxy
        ("10.0.0.2", ["198.51.100.1:4711"], "198.51.100.1"),
        ("10.0.0.2", ["[2001:db8:1::5]:4711"], "2001:db8:1::5"),
        ("2001:db8::2", ["198.51.100.1"], "198.51.100.1"),
        ("::ffff:10.0.0.2", ["198.51.100.1"], "198.51.100.1"),  # a dual-stack socket's IPv4 peer
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_the_client_is_the_rightmost_hop_not_a_trusted_proxy(
    peer: str | None, forwarded: list[str], expected: str
) -> None:
    assert forwarded_client(peer, forwarded, trusted=PROXY) == expected


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert forwarded_client("127.0.0.1", ["198.51.100.1"], trusted=[]) == "127.0.0.1"


def test_the_trusted_proxies_setting_reads_addresses_and_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings().review_trusted_proxies == []
    monkeypatch.setenv("KEEL_REVIEW_TRUSTED_PROXIES", '["10.0.0.5", "10.1.0.0/16", "::1"]')
    assert Settings().review_trusted_proxies == [
        ip_network("10.0.0.5/32"),
        ip_network("10.1.0.0/16"),
        ip_network("::1"),
    ]
    monkeypatch.setenv("KEEL_REVIEW_TRUSTED_PROXIES", '["10.0.0.5/8"]')  # host bits set: a typo
    with pytest.raises(ValueError, match="review_trusted_proxies"):
        Settings()


async def _failures_then(client: TestClient, *, failing_from: str, then_from: str) -> int:
    """Three failed logins (the fixture's limit) from one forwarded address, then the right password
    from another: the status of that last login."""
    for _ in range(3):
        assert (await _login_from(client, failing_from, "guess", name="nobody")).status == 401
    return (await _login_from(client, then_from, ADMIN_PASSWORD)).status


async def _login_from(client: TestClient, address: str, password: str, *, name: str = ADMIN) -> ClientResponse:
    form = await client.get("/login")
    token = form.cookies["keel_review_login"].value
    data = {"username": name, "password": password, "login_token": token}
    return await client.post("/login", data=data, headers={"X-Forwarded-For": address}, allow_redirects=False)


@pytest.mark.parametrize("trusted", [False, True])
async def test_the_throttle_sees_the_forwarded_client_only_behind_a_trusted_proxy(
    tmp_path: Path, trusted: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keel.review.access")
    app = build_web_app(
        InMemoryReviewService([make_item()]),
        make_users(tmp_path),
        throttle=LoginThrottle(max_failures=3, failure_delay_s=0),
        trusted_proxies=[ip_network("127.0.0.1")] if trusted else [],
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        status = await _failures_then(client, failing_from="198.51.100.1", then_from="198.51.100.2")
    # trusted: two clients, the second unharmed; untrusted: one client (the socket's), whatever it claims
    assert status == (303 if trusted else 429)
    remotes = {orjson.loads(r.getMessage()).get("remote") for r in caplog.records if r.name == "keel.review.access"}
    assert remotes == ({"198.51.100.1", "198.51.100.2"} if trusted else {"127.0.0.1"})


def test_keel_review_serve_passes_the_trusted_proxies_on(tmp_path: Path) -> None:
    settings = Settings(review_users_file=tmp_path / "u.yaml", review_trusted_proxies=["10.0.0.0/24"])
    assert serve_web_app(InMemoryReviewService(), settings)[CONTEXT].trusted_proxies == (ip_network("10.0.0.0/24"),)


class SlowChecks:
    """Wraps ``UserFile.authenticate``: counts the checks, how many ran at once at most, and on which
    threads; each takes ``seconds`` (an scrypt's stand-in) so that parallel requests really overlap."""

    def __init__(self, users: UserFile, *, seconds: float = 0.05) -> None:
        self.calls = 0
        self.most_at_once = 0
        self.threads: set[int] = set()
        self._running = 0
        self._lock = threading.Lock()
        self._real = users.authenticate
        self._seconds = seconds
        users.authenticate = self.authenticate  # type: ignore[method-assign]

    def authenticate(self, name: str, password: str) -> User | None:
        with self._lock:
            self.calls += 1
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
            self.threads.add(threading.get_ident())
        try:
            time.sleep(self._seconds)
            return self._real(name, password)
        finally:
            with self._lock:
                self._running -= 1


async def _api_calls(client: TestClient, count: int, password: str) -> list[int]:
    calls = [client.get("/api/v1/items", headers=basic(ADMIN, password)) for _ in range(count)]
    return [response.status for response in await asyncio.gather(*calls)]


async def test_parallel_guesses_get_no_more_password_checks_than_the_limit(tmp_path: Path) -> None:
    users = make_users(tmp_path)
    checks = SlowChecks(users)
    app = build_web_app(
        InMemoryReviewService([make_item()]),
        users,
        throttle=LoginThrottle(max_failures=3, failure_delay_s=0),
        check_slots=CheckSlots(per_address=100),  # this test is about the throttle alone
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        statuses = await _api_calls(client, 12, "wrong-password")
    assert checks.calls <= 3
    assert sorted(statuses) == [401] * checks.calls + [429] * (12 - checks.calls)


async def test_concurrent_checks_per_address_are_bounded_and_the_rest_wait(tmp_path: Path) -> None:
    users = make_users(tmp_path)
    checks = SlowChecks(users)
    slots = CheckSlots()
    app = build_web_app(
        InMemoryReviewService([make_item()]),
        users,
        throttle=LoginThrottle(max_failures=50, failure_delay_s=0),
        check_slots=slots,
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        statuses = await _api_calls(client, 8, ADMIN_PASSWORD)
    assert slots.per_address == 2
    assert statuses == [200] * 8  # the excess waited for a slot: nobody was refused
    assert checks.calls == 8 and checks.most_at_once == 2
    assert threading.get_ident() not in checks.threads  # never on the event loop's thread
    assert len(slots) == 0  # nothing kept once the checks are done


async def test_a_users_back_off_ends_and_the_right_password_works_from_another_address(tmp_path: Path) -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, failure_delay_s=0, backoff_base_s=30, clock=lambda: now[0])
    app = build_web_app(
        InMemoryReviewService([make_item()]),
        make_users(tmp_path),
        throttle=throttle,
        trusted_proxies=[ip_network("127.0.0.1")],
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for n in range(3):  # three guessers, each under the per-address limit
            assert (await _login_from(client, f"198.51.100.{n}", "guess")).status == 401
        assert (await _login_from(client, "203.0.113.7", ADMIN_PASSWORD)).status == 429  # backed off
        now[0] += 30
        assert (await _login_from(client, "203.0.113.7", ADMIN_PASSWORD)).status == 303
