"""The JSON API over a real HTTP server on loopback and the in-memory service: every action, and a clear
4xx with ``{"error", "message"}`` for every way a request can be wrong."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from review_fakes import TRIAGE_OUTPUT, InMemoryReviewService, make_item
from review_http import ADMIN, ADMIN_PASSWORD, REVIEWER, REVIEWER_PASSWORD, basic, make_users

from streams.review.sessions import LoginThrottle
from streams.review.web.app import build_web_app

AS_ADMIN = basic(ADMIN, ADMIN_PASSWORD)
AS_REVIEWER = basic(REVIEWER, REVIEWER_PASSWORD)


@dataclass
class Api:
    client: TestClient
    service: InMemoryReviewService

    async def call(self, method: str, path: str, *, headers: dict[str, str] = AS_ADMIN, body: Any = None,
                   raw: bytes | None = None) -> tuple[int, Any]:  # fmt: skip
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        response = await self.client.request(method, f"/api/v1{path}", headers=headers, data=data)
        assert response.content_type == "application/json"
        return response.status, await response.json()

    async def decide(self, item_id: str, body: Any, *, headers: dict[str, str] = AS_ADMIN) -> tuple[int, Any]:
        return await self.call("POST", f"/items/{item_id}/decision", body=body, headers=headers)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    old_ms = int(time.time() * 1000) - 7_200_000
    service = InMemoryReviewService(
        [
            make_item(item_id="t-0", created_at_ms=old_ms),
            make_item(item_id="t-1", created_at_ms=old_ms + 1),
            make_item(item_id="t-2"),
            make_item(item_id="inv-0", agent="invoice_extraction", output_json='{"total": 900}'),
        ]
    )
    app = build_web_app(service, make_users(tmp_path), throttle=LoginThrottle(max_failures=50, failure_delay_s=0))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Api(client, service)


async def test_list_items_with_filters_and_pagination(api: Api) -> None:
    status, body = await api.call("GET", "/items")
    assert status == 200
    assert body["total"] == 4
    assert [i["id"] for i in body["items"]][:2] == ["t-0", "t-1"]
    _, page = await api.call("GET", "/items?offset=1&limit=2")
    assert ([i["id"] for i in page["items"]], page["total"], page["offset"], page["limit"]) == (["t-1", "t-2"], 4, 1, 2)
    _, old = await api.call("GET", "/items?min_age_s=3600")
    assert [i["id"] for i in old["items"]] == ["t-0", "t-1"]
    _, invoices = await api.call("GET", "/items?agent=invoice_extraction")
    assert [i["id"] for i in invoices["items"]] == ["inv-0"]


async def test_a_reviewer_lists_only_their_agents(api: Api) -> None:
    _, body = await api.call("GET", "/items", headers=AS_REVIEWER)
    assert {i["agent"] for i in body["items"]} == {"support_triage"}
    assert body["total"] == 3


@pytest.mark.parametrize("query", ["offset=-1", "limit=0", "limit=1000", "offset=x", "min_age_s=nan"])
async def test_a_bad_query_is_400(api: Api, query: str) -> None:
    status, body = await api.call("GET", f"/items?{query}")
    assert status == 400
    assert body["error"] == "bad_query"
    assert body["message"]


async def test_get_item_has_everything_a_reviewer_needs(api: Api) -> None:
    status, body = await api.call("GET", "/items/t-0")
    assert status == 200
    assert body["output"] == TRIAGE_OUTPUT
    assert body["input"]["subject"] == "Charged twice"
    assert body["attempts"][0]["model"] == "sim-small"
    assert body["prompt"][0]["role"] == "system"
    assert (body["rule"], body["route"], body["decision"]) == ("confidence_below_0.7", "review", None)


async def test_approve(api: Api) -> None:
    status, body = await api.decide("t-0", {"action": "approve"})
    assert status == 201
    assert (body["action"], body["reviewer"], body["item_id"]) == ("approve", ADMIN, "t-0")
    assert api.service.decisions["t-0"].reviewer == ADMIN
    _, item = await api.call("GET", "/items/t-0")
    assert item["decision"]["action"] == "approve"
    _, listed = await api.call("GET", "/items")
    assert "t-0" not in [i["id"] for i in listed["items"]]


async def test_reject_with_a_reason(api: Api) -> None:
    status, body = await api.decide("t-0", {"action": "reject", "reason": "wrong category"}, headers=AS_REVIEWER)
    assert status == 201
    assert (body["action"], body["reason"], body["reviewer"]) == ("reject", "wrong category", REVIEWER)


@pytest.mark.parametrize("as_text", [False, True])
async def test_edit_with_an_object_or_its_json_text(api: Api, as_text: bool) -> None:
    corrected = TRIAGE_OUTPUT | {"category": "account_access"}
    output = orjson.dumps(corrected).decode() if as_text else corrected
    status, body = await api.decide("t-0", {"action": "edit", "output": output})
    assert status == 201
    assert body["output"] == corrected
    assert orjson.loads(api.service.decisions["t-0"].output_json or "") == corrected


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b'{"action": "shrug"}', "unknown_action"),
        (b"{}", "unknown_action"),
        (b'{"action": "approve", "reviewer": "someone-else"}', "unknown_field"),
        (b'{"action": "reject", "reason": 5}', "bad_field"),
    ],
)
async def test_a_malformed_decision_is_400(api: Api, raw: bytes, error: str) -> None:
    status, body = await api.call("POST", "/items/t-0/decision", raw=raw)
    assert (status, body["error"]) == (400, error)
    assert body["message"]
    assert api.service.drafts == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"action": "reject"}, "missing_reason"),
        ({"action": "reject", "reason": ""}, "missing_reason"),
        ({"action": "edit"}, "invalid_edit"),
        ({"action": "edit", "output": "{not json"}, "invalid_edit"),
        ({"action": "edit", "output": ["a list"]}, "invalid_edit"),
        ({"action": "edit", "output": {"category": "bug", "priority": "low"}}, "invalid_edit"),
    ],
)
async def test_an_invalid_edit_or_a_reject_without_reason_is_422(api: Api, body: dict[str, Any], error: str) -> None:
    status, answer = await api.decide("t-0", body)
    assert (status, answer["error"]) == (422, error)
    assert "t-0" not in api.service.decisions


@pytest.mark.parametrize(
    "headers",
    [{}, basic(ADMIN, "wrong"), basic("nobody", "x"), {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}],
    ids=["none", "wrong-password", "unknown-user", "garbled", "other-scheme"],
)
async def test_no_or_bad_credentials_are_401(api: Api, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/items"), ("GET", "/items/t-0"), ("POST", "/items/t-0/decision")):
        status, body = await api.call(method, path, headers=headers, body={"action": "approve"})
        assert (status, body["error"]) == (401, "unauthenticated")
    assert api.service.drafts == []


async def test_a_reviewer_may_not_touch_another_agents_items(api: Api) -> None:
    assert (await api.call("GET", "/items?agent=invoice_extraction", headers=AS_REVIEWER))[0] == 403
    status, body = await api.decide("inv-0", {"action": "approve"}, headers=AS_REVIEWER)
    assert (status, body["error"]) == (404, "no_such_item")
    assert api.service.drafts == []


async def test_another_agents_item_is_answered_exactly_like_a_missing_one(api: Api) -> None:
    """A 403 would tell a reviewer that the id exists; the answer must not differ in any way."""
    api.service.add(make_item(item_id="inv-1", agent="invoice_extraction"))
    api.service.remove("inv-1")
    for call in (
        lambda item: api.call("GET", f"/items/{item}", headers=AS_REVIEWER),
        lambda item: api.decide(item, {"action": "approve"}, headers=AS_REVIEWER),
    ):
        forbidden, missing = await call("inv-0"), await call("inv-1")
        assert forbidden[0] == 404
        assert orjson.dumps(forbidden).replace(b"inv-0", b"inv-1") == orjson.dumps(missing)
    assert (await api.call("GET", "/items/inv-0"))[0] == 200  # it is there, for an admin


async def test_a_second_decision_is_409(api: Api) -> None:
    assert (await api.decide("t-0", {"action": "approve"}))[0] == 201
    status, body = await api.decide("t-0", {"action": "reject", "reason": "changed my mind"}, headers=AS_REVIEWER)
    assert (status, body["error"]) == (409, "already_decided")
    assert api.service.decisions["t-0"].action == "approve"


async def test_a_decision_on_a_missing_item_is_404(api: Api) -> None:
    assert (await api.call("GET", "/items/nope"))[0] == 404
    api.service.remove("t-1")
    status, body = await api.decide("t-1", {"action": "approve"})
    assert (status, body["error"]) == (404, "no_such_item")


async def test_an_unknown_api_path_is_json_too(api: Api) -> None:
    status, body = await api.call("GET", "/nothing-here")
    assert (status, body["error"]) == (404, "not_found")


async def test_every_decision_attempt_is_on_the_access_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="keel.review.access")
    await api.decide("t-0", {"action": "approve"}, headers=AS_REVIEWER)
    await api.decide("t-0", {"action": "approve"}, headers=AS_REVIEWER)
    await api.decide("inv-0", {"action": "approve"}, headers=AS_REVIEWER)
    await api.decide("t-1", {"action": "shrug"}, headers=AS_REVIEWER)
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "keel.review.access"]
    decisions = [(d["user"], d["item"], d["outcome"], d.get("code")) for d in lines if d["event"] == "decision"]
    assert decisions == [
        (REVIEWER, "t-0", "accepted", None),
        (REVIEWER, "t-0", "refused", "already_decided"),
        (REVIEWER, "inv-0", "refused", "forbidden"),
        (REVIEWER, "t-1", "refused", "unknown_action"),
    ]
    assert all(d["via"] == "api" for d in lines if d["event"] == "decision")
