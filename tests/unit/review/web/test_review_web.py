"""The review UI over a real HTTP server on loopback (aiohttp's test server) and the in-memory service:
authentication of every route, login and logout, CSRF, the queue, the item page and its decisions."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from review_fakes import InMemoryReviewService, make_item
from review_http import (
    ADMIN,
    ADMIN_PASSWORD,
    REVIEWER,
    REVIEWER_PASSWORD,
    TEST_COST,
    basic,
    csrf_token,
    hidden,
    login,
    make_users,
    post_login,
)

from streams.apps.review.shell import build_web_app as serve_web_app
from streams.core.settings import Settings
from streams.review.sessions import LoginThrottle, SessionTable
from streams.review.users import ScryptCost, UserFile
from streams.review.web.app import PUBLIC_ROUTES, ROUTE_TABLE, build_web_app
from streams.review.web.context import CONTEXT


@dataclass
class Web:
    client: TestClient
    service: InMemoryReviewService
    sessions: SessionTable


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[Web]:
    service = InMemoryReviewService()
    for n in range(3):
        service.add(make_item(item_id=f"triage-{n}", created_at_ms=int(time.time() * 1000) - 3_600_000 + n))
    service.add(make_item(item_id="invoice-0", agent="invoice_extraction", rule="total_above_500"))
    sessions = SessionTable()
    app = build_web_app(
        service, make_users(tmp_path), sessions=sessions, throttle=LoginThrottle(max_failures=3, failure_delay_s=0)
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Web(client, service, sessions)


def _concrete(path: str) -> str:
    return path.replace("{item_id}", "triage-0")


PROTECTED = [(method, path, name) for method, path, _handler, name in ROUTE_TABLE if name not in PUBLIC_ROUTES]


@pytest.mark.parametrize(("method", "path", "name"), PROTECTED, ids=[name for *_, name in PROTECTED])
async def test_every_protected_route_refuses_an_anonymous_caller(web: Web, method: str, path: str, name: str) -> None:
    response = await web.client.request(method, _concrete(path), data=b"{}", allow_redirects=False)
    if path.startswith("/api/"):
        assert response.status == 401
        assert (await response.json())["error"] == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    else:
        assert response.status == 303
        assert response.headers["Location"].startswith("/login?next=")
    assert web.service.drafts == []


async def test_the_route_table_is_every_route_the_server_has(web: Web) -> None:
    served = {route.name for route in web.client.app.router.routes() if route.method != "HEAD"}
    assert served == {name for *_, name in ROUTE_TABLE}


async def test_pages_do_not_accept_api_credentials_nor_the_api_a_session(web: Web) -> None:
    page = await web.client.get("/", headers=basic(ADMIN, ADMIN_PASSWORD), allow_redirects=False)
    assert page.status == 303
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    api = await web.client.get("/api/v1/items")
    assert api.status == 401


async def test_login_sets_a_strict_http_only_session_cookie_and_logs_it(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keel.review.access")
    response = await post_login(web.client, ADMIN, ADMIN_PASSWORD, page="/login?next=/items/triage-1", echo=("next",))
    assert response.status == 303
    assert response.headers["Location"] == "/items/triage-1"
    cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("keel_review_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert len(web.sessions) == 1
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "keel.review.access"]
    assert {"event": "login", "user": ADMIN, "via": "ui"}.items() <= lines[-1].items()


@pytest.mark.parametrize(("name", "password"), [(ADMIN, "wrong-password"), ("nobody", ADMIN_PASSWORD)])
async def test_a_failed_login_does_not_say_which_part_was_wrong(
    web: Web, caplog: pytest.LogCaptureFixture, name: str, password: str
) -> None:
    caplog.set_level(logging.INFO, logger="keel.review.access")
    response = await post_login(web.client, name, password)
    assert response.status == 401
    assert "Unknown user name or wrong password." in await response.text()
    assert "keel_review_session" not in response.headers.get("Set-Cookie", "")
    assert len(web.sessions) == 0
    assert any('"event":"login_failed"' in r.getMessage() and name in r.getMessage() for r in caplog.records)


async def test_repeated_failures_block_even_the_right_password(web: Web) -> None:
    for _ in range(3):
        assert (await post_login(web.client, ADMIN, "guess")).status == 401
    response = await post_login(web.client, ADMIN, ADMIN_PASSWORD)
    assert response.status == 429
    assert len(web.sessions) == 0


async def test_login_without_the_form_token_is_refused(web: Web) -> None:
    data = {"username": ADMIN, "password": ADMIN_PASSWORD, "login_token": "made-up"}
    response = await web.client.post("/login", data=data, allow_redirects=False)
    assert response.status == 403
    assert len(web.sessions) == 0


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "/\n/evil.example"]
)
async def test_login_only_redirects_to_this_server(web: Web, target: str) -> None:
    response = await post_login(web.client, ADMIN, ADMIN_PASSWORD, page=f"/login?next={target}", next=target)
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("token", [None, "", "forged-token"])
async def test_a_decision_form_without_the_sessions_csrf_token_is_refused(web: Web, token: str | None) -> None:
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    data = {"action": "approve"} | ({} if token is None else {"csrf": token})
    response = await web.client.post("/items/triage-0/decision", data=data, allow_redirects=False)
    assert response.status == 403
    assert "security token" in await response.text()
    assert web.service.drafts == []


async def test_a_token_from_another_session_is_refused(web: Web, tmp_path: Path) -> None:
    await login(web.client, REVIEWER, REVIEWER_PASSWORD)
    others_token = await csrf_token(web.client)
    web.client.session.cookie_jar.clear()
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    data = {"action": "approve", "csrf": others_token}
    response = await web.client.post("/items/triage-0/decision", data=data, allow_redirects=False)
    assert response.status == 403
    assert web.service.drafts == []


async def test_logout_needs_the_token_and_ends_the_session(web: Web) -> None:
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    assert (await web.client.post("/logout", data={}, allow_redirects=False)).status == 403
    token = await csrf_token(web.client)
    response = await web.client.post("/logout", data={"csrf": token}, allow_redirects=False)
    assert response.status == 303
    assert len(web.sessions) == 0
    assert (await web.client.get("/", allow_redirects=False)).status == 303


async def test_queue_shows_only_the_reviewers_agents(web: Web) -> None:
    await login(web.client, REVIEWER, REVIEWER_PASSWORD)
    page = await (await web.client.get("/")).text()
    assert re.search(r'id="total"><b>3</b> pending', page)
    assert "invoice-0" not in page
    assert '<option value="invoice_extraction"' not in page
    assert (await web.client.get("/?agent=invoice_extraction")).status == 403


async def test_another_agents_item_page_is_a_404_like_a_missing_item(web: Web) -> None:
    await login(web.client, REVIEWER, REVIEWER_PASSWORD)
    token = await csrf_token(web.client)
    for method, suffix, data in (("GET", "", None), ("POST", "/decision", {"action": "approve", "csrf": token})):
        forbidden = await web.client.request(method, f"/items/invoice-0{suffix}", data=data, allow_redirects=False)
        missing = await web.client.request(method, f"/items/invoice-9{suffix}", data=data, allow_redirects=False)
        assert (forbidden.status, missing.status) == (404, 404)
        assert (await forbidden.text()).replace("invoice-0", "invoice-9") == await missing.text()
    assert web.service.drafts == []


async def test_queue_filters_by_agent_and_age(web: Web) -> None:
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    assert re.search(r"<b>4</b> pending", await (await web.client.get("/")).text())
    assert re.search(r"<b>1</b> pending", await (await web.client.get("/?agent=invoice_extraction")).text())
    assert re.search(r"<b>3</b> pending", await (await web.client.get("/?min_age_s=1800")).text())
    assert (await web.client.get("/?min_age_s=-5")).status == 400


async def test_item_page_shows_input_output_and_trace_escaped(web: Web) -> None:
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    page = await (await web.client.get("/items/triage-1?at=1")).text()
    for section in ('id="input"', 'id="output"', 'id="trace"', "Charged twice this month.", "sim/sim-small"):
        assert section in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<b>x</b>" not in page
    assert 'id="prev-item" href="/items/triage-0?at=0"' in page
    assert 'id="next-item" href="/items/triage-2?at=2"' in page


async def test_a_decision_opens_the_next_pending_item(web: Web) -> None:
    await login(web.client, REVIEWER, REVIEWER_PASSWORD)
    token = await csrf_token(web.client, "/items/triage-0?at=0")
    data = {"action": "approve", "csrf": token, "at": "0"}
    response = await web.client.post("/items/triage-0/decision", data=data, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/items/triage-1?at=0&decided=approve"
    decision = web.service.decisions["triage-0"]
    assert (decision.action, decision.reviewer) == ("approve", REVIEWER)


async def test_the_reviewer_is_the_logged_in_user_whatever_the_form_says(web: Web) -> None:
    await login(web.client, REVIEWER, REVIEWER_PASSWORD)
    token = await csrf_token(web.client)
    data = {"action": "reject", "reason": "wrong category", "reviewer": ADMIN, "csrf": token}
    await web.client.post("/items/triage-0/decision", data=data, allow_redirects=False)
    assert web.service.decisions["triage-0"].reviewer == REVIEWER


@pytest.mark.parametrize(
    ("data", "status", "shown"),
    [
        ({"action": "reject", "reason": "  "}, 422, "a rejection needs a reason"),
        ({"action": "edit", "output": "{not json"}, 422, "not JSON"),
        ({"action": "edit", "output": '{"category": "bug"}'}, 422, "lacks required field(s): priority"),
        ({"action": "shrug"}, 400, "action must be one of"),
    ],
)
async def test_a_refused_decision_is_shown_on_the_page(web: Web, data: dict[str, str], status: int, shown: str) -> None:
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    token = await csrf_token(web.client)
    response = await web.client.post("/items/triage-0/decision", data=data | {"csrf": token}, allow_redirects=False)
    assert response.status == status
    page = await response.text()
    assert shown in page
    if data["action"] == "edit":
        assert "{not json" in page or "&quot;category&quot;: &quot;bug&quot;" in page  # the draft is kept
    assert "triage-0" not in web.service.decisions


async def test_a_second_decision_is_refused_and_shows_the_first(web: Web) -> None:
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    token = await csrf_token(web.client)
    first = await web.client.post("/items/triage-0/decision", data={"action": "approve", "csrf": token})
    assert first.status == 200
    second = await web.client.post(
        "/items/triage-0/decision", data={"action": "reject", "reason": "no", "csrf": token}, allow_redirects=False
    )
    assert second.status == 409
    page = await second.text()
    assert "already decided" in page
    assert 'id="decision"' in page
    assert web.service.decisions["triage-0"].action == "approve"


async def test_a_decision_on_an_item_that_is_gone_is_404(web: Web) -> None:
    await login(web.client, ADMIN, ADMIN_PASSWORD)
    token = await csrf_token(web.client)
    web.service.remove("triage-0")
    response = await web.client.post("/items/triage-0/decision", data={"action": "approve", "csrf": token})
    assert response.status == 404
    assert (await web.client.get("/items/triage-0")).status == 404


async def test_security_headers_on_every_page(web: Web) -> None:
    response = await web.client.get("/login")
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


async def test_an_idle_session_expires(tmp_path: Path) -> None:
    now = [1000.0]
    sessions = SessionTable(idle_timeout_s=60, clock=lambda: now[0])
    app = build_web_app(InMemoryReviewService([make_item()]), make_users(tmp_path), sessions=sessions)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await login(client, ADMIN, ADMIN_PASSWORD)
        now[0] += 59
        assert (await client.get("/", allow_redirects=False)).status == 200
        now[0] += 61
        assert (await client.get("/", allow_redirects=False)).status == 303


async def test_a_session_ends_at_its_maximum_age_however_busy(tmp_path: Path) -> None:
    now = [1000.0]
    sessions = SessionTable(idle_timeout_s=60, max_age_s=100, clock=lambda: now[0])
    app = build_web_app(InMemoryReviewService([make_item()]), make_users(tmp_path), sessions=sessions)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await post_login(client, ADMIN, ADMIN_PASSWORD, next="/")
        cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("keel_review_session="))
        assert "Max-Age=60" in cookie
        for _ in range(3):
            now[0] += 30
            assert (await client.get("/", allow_redirects=False)).status == 200
        now[0] += 10
        assert (await client.get("/", allow_redirects=False)).status == 303


async def test_a_password_changed_by_the_cli_ends_that_users_sessions(tmp_path: Path) -> None:
    """`keel review user add` for an existing user, in another process: only the users file changes."""
    sessions = SessionTable()
    app = build_web_app(InMemoryReviewService([make_item()]), make_users(tmp_path), sessions=sessions)
    async with (
        TestClient(TestServer(app, host="127.0.0.1")) as rob,
        TestClient(TestServer(app, host="127.0.0.1")) as ada,
    ):
        await login(rob, REVIEWER, REVIEWER_PASSWORD)
        await login(ada, ADMIN, ADMIN_PASSWORD)
        cli = UserFile(tmp_path / "reviewers.yaml", cost=TEST_COST)
        cli.put(REVIEWER, password="rob-new-password", role="reviewer", agents=["support_triage"])
        assert (await rob.get("/", allow_redirects=False)).status == 303
        assert len(sessions) == 1  # rob's was closed, not just refused
        assert (await ada.get("/", allow_redirects=False)).status == 200  # other users keep theirs
        await login(rob, REVIEWER, "rob-new-password")
        assert (await rob.get("/", allow_redirects=False)).status == 200


async def test_a_hash_upgraded_at_login_keeps_the_session(tmp_path: Path) -> None:
    make_users(tmp_path)  # hashed at the tests' cost
    users = UserFile(tmp_path / "reviewers.yaml", cost=ScryptCost(n=2**11, r=8, p=1))
    app = build_web_app(InMemoryReviewService([make_item()]), users)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await login(client, ADMIN, ADMIN_PASSWORD)
        assert "scrypt$2048$" in users.path.read_text()
        assert (await client.get("/", allow_redirects=False)).status == 200


async def test_queue_page_of_10000_items(tmp_path: Path) -> None:
    start_ms = int(time.time() * 1000) - 86_400_000
    service = InMemoryReviewService(make_item(created_at_ms=start_ms + n) for n in range(10_000))
    app = build_web_app(service, make_users(tmp_path))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await login(client, ADMIN, ADMIN_PASSWORD)
        await client.get("/")  # warm the fake's sort
        timings_ms = []
        for page in (1, 100, 200):
            began = time.perf_counter()
            html = await (await client.get(f"/?page={page}")).text()
            timings_ms.append((time.perf_counter() - began) * 1000)
            assert "<b>10000</b> pending · page" in html
            assert html.count("<tr data-href=") == 50
        began = time.perf_counter()
        await client.get("/items/" + service.pending(agents=None, offset=9_999, limit=1).items[0].item_id + "?at=9999")
        item_ms = (time.perf_counter() - began) * 1000
    print(
        f"\n10,000-item queue: pages 1/100/200 in {', '.join(f'{t:.1f}' for t in timings_ms)} ms; item page {item_ms:.1f} ms"
    )


@pytest.mark.parametrize("secure", [False, True])
async def test_the_secure_cookies_setting_marks_the_cookies_secure(tmp_path: Path, secure: bool) -> None:
    settings = Settings(review_users_file=make_users(tmp_path).path, review_secure_cookies=secure)
    app = serve_web_app(InMemoryReviewService(), settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        form = await client.get("/login")
        [login_cookie] = form.headers.getall("Set-Cookie")
        token = hidden(await form.text(), "login_token")
        response = await client.post(  # sent by hand: over plain HTTP a client keeps a Secure cookie to itself
            "/login",
            data={"username": ADMIN, "password": ADMIN_PASSWORD, "login_token": token},
            headers={"Cookie": login_cookie.split(";", 1)[0]},
            allow_redirects=False,
        )
        session_cookie = next(c for c in response.headers.getall("Set-Cookie") if c.startswith("keel_review_session="))
    assert response.status == 303
    assert ("Secure" in login_cookie, "Secure" in session_cookie) == (secure, secure)


@pytest.mark.parametrize("secure", [False, True])
async def test_hsts_on_every_response_when_the_cookies_are_secure(tmp_path: Path, secure: bool) -> None:
    app = build_web_app(InMemoryReviewService([make_item()]), make_users(tmp_path), secure_cookies=secure)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        responses = [
            await client.get("/login"),  # a page
            await client.get("/", allow_redirects=False),  # a redirect (an HTTPException)
            await client.get("/assets/review.css"),
            await client.get("/api/v1/items"),  # a Problem turned into JSON
            await client.get("/api/v1/nothing", headers=basic(ADMIN, ADMIN_PASSWORD)),  # aiohttp's own 404
        ]
    assert [r.status for r in responses] == [200, 303, 200, 401, 404]
    for response in responses:
        hsts = response.headers.get("Strict-Transport-Security")
        assert hsts == ("max-age=31536000; includeSubDomains" if secure else None), response.url


def test_the_session_max_age_setting_reaches_the_session_table(tmp_path: Path) -> None:
    settings = Settings(review_users_file=tmp_path / "reviewers.yaml", review_session_max_age_s=3600)
    assert serve_web_app(InMemoryReviewService(), settings)[CONTEXT].sessions.max_age_s == 3600
    assert Settings(review_users_file=tmp_path / "u.yaml").review_session_max_age_s == 12 * 3600
