"""The whole handoff loop in real headless Chromium against `keel review serve`'s service on the real
broker: a reviewer logs in, approves one item, edits another and rejects a third; then the results,
dead-letter and audit topics say so, with the reviewer's name on each."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from browser import browser, ctrl, log_in, press, wait_for_item  # noqa: F401  # browser: the fixture
from loopback import LoopbackServer
from review_broker import AUDIT, DLQ, RESULTS, by_event, outcomes_when, publish_items
from review_http import REVIEWER, make_users
from review_samples import TRIAGE_OUTPUT
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from connectors.local.daemon import run_sync
from streams.apps.review.shell import build_process, running
from streams.core.catalogue import Catalogue
from streams.core.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


REASON = "Summary invents a refund we never offered"


def review_server(config: Settings) -> LoopbackServer:
    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[int]:
        async with running(config, build_process(config), web_port=0) as served:
            yield served.port

    return LoopbackServer(serve, timeout_s=90)


def test_a_reviewer_in_the_browser_decides_and_the_topics_show_it(
    browser: webdriver.Chrome,  # noqa: F811
    settings: Settings,
    catalogue: Catalogue,
    tmp_path,
) -> None:
    approved, edited, rejected, waiting = run_sync(lambda: publish_items(settings, catalogue, ["review"] * 4))
    settings = settings.model_copy(update={"review_users_file": make_users(tmp_path).path})
    corrected = TRIAGE_OUTPUT | {"priority": "urgent", "summary": "checked by a human"}
    with review_server(settings) as server:
        log_in(browser, server.base_url)
        assert browser.find_element(By.ID, "total").text.startswith("4 pending")
        press(browser, "n")
        wait_for_item(browser, approved)
        press(browser, "a")
        wait_for_item(browser, edited)
        press(browser, "e")
        ctrl(browser, "a")
        press(browser, json.dumps(corrected))
        ctrl(browser, Keys.ENTER)
        wait_for_item(browser, rejected)
        press(browser, "r")
        press(browser, REASON)
        ctrl(browser, Keys.ENTER)
        wait_for_item(browser, waiting)
        press(browser, "q")
        WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "queue")))
        assert browser.find_element(By.ID, "total").text.startswith("1 pending")

        def decided(seen: dict[str, list[dict[str, object]]]) -> bool:
            return len(seen[RESULTS]) >= 2 and seen[DLQ] and len(seen[AUDIT]) >= 3

        seen = run_sync(lambda: outcomes_when(settings, catalogue, decided, wait_s=60))

    results = {r["event_id"]: r for r in seen[RESULTS]}
    assert by_event(seen[RESULTS]) == {approved: 1, edited: 1}
    assert results[approved]["reviewer"] == REVIEWER and results[approved]["human_override"] is False
    assert results[approved]["output"] == TRIAGE_OUTPUT
    assert results[edited]["reviewer"] == REVIEWER and results[edited]["human_override"] is True
    assert results[edited]["output"] == corrected
    [dead] = seen[DLQ]
    assert dead["event_id"] == rejected and dead["reason"] == "review_rejected" and REASON in dead["message"]
    audit = {a["event_id"]: a for a in seen[AUDIT]}
    assert by_event(seen[AUDIT]) == {approved: 1, edited: 1, rejected: 1}
    assert {e: (a["review_action"], a["reviewer"]) for e, a in audit.items()} == {
        approved: ("approve", REVIEWER),
        edited: ("edit", REVIEWER),
        rejected: ("reject", REVIEWER),
    }
    assert audit[rejected]["review_reason"] == REASON
