"""A reviewer's session in real headless Chromium: log in, approve one item with the keyboard, edit
another (a refused edit through the form first, then the keyboard), reject a third with a reason; the
service has those three decisions by that reviewer and the queue shows the rest.

The service is the in-memory one here; the same flow runs against the Kafka-backed service once the
review branches are joined (then the results, dead-letter and audit topics are checked too).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from browser import ctrl, log_in, press, wait_for_item
from loopback import app_server
from review_fakes import TRIAGE_OUTPUT, InMemoryReviewService, make_item
from review_http import REVIEWER, make_users
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from streams.review.web.app import build_web_app

pytestmark = pytest.mark.e2e

ITEMS = [f"e2e-{n}" for n in range(6)]


def test_review_three_items_in_the_browser(browser: webdriver.Chrome, tmp_path: Path) -> None:
    start_ms = int(time.time() * 1000) - 3_600_000
    service = InMemoryReviewService(make_item(item_id=i, created_at_ms=start_ms + n) for n, i in enumerate(ITEMS))
    service.add(make_item(item_id="other-agent", agent="invoice_extraction", output_json='{"total": 1}'))
    with app_server(build_web_app(service, make_users(tmp_path))) as server:
        log_in(browser, server.base_url)
        assert browser.find_element(By.ID, "total").text.startswith("6 pending")  # not the other agent's item

        press(browser, "n")  # the first item
        wait_for_item(browser, "e2e-0")
        press(browser, "a")  # approve
        wait_for_item(browser, "e2e-1")
        assert "Recorded: approve" in browser.find_element(By.ID, "notice").text

        editor = browser.find_element(By.ID, "edit-output")
        editor.send_keys(Keys.CONTROL, "a")
        editor.send_keys('{"category": "bug"}')
        browser.find_element(By.ID, "edit").click()  # through the form: refused, and said so
        WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "problem")))
        assert "lacks required field(s): priority" in browser.find_element(By.ID, "problem").text
        corrected = TRIAGE_OUTPUT | {"category": "account_access", "priority": "urgent"}
        press(browser, "e")  # the keyboard: e focuses the JSON, Ctrl+Enter saves
        assert browser.switch_to.active_element.get_attribute("id") == "edit-output"
        ctrl(browser, "a")
        press(browser, json.dumps(corrected))
        ctrl(browser, Keys.ENTER)
        wait_for_item(browser, "e2e-2")

        press(browser, "r")  # reject: r focuses the reason
        press(browser, "Summary invents a refund we never offered")
        ctrl(browser, Keys.ENTER)
        wait_for_item(browser, "e2e-3")

        press(browser, "q")  # back to the queue
        WebDriverWait(browser, 15).until(expected_conditions.presence_of_element_located((By.ID, "queue")))
        assert browser.find_element(By.ID, "total").text.startswith("3 pending")
        rows = [row.get_attribute("data-item") for row in browser.find_elements(By.CSS_SELECTOR, "tr[data-item]")]

    assert rows == ["e2e-3", "e2e-4", "e2e-5"]
    decided = {item_id: (d.action, d.reviewer) for item_id, d in service.decisions.items()}
    assert decided == {"e2e-0": ("approve", REVIEWER), "e2e-1": ("edit", REVIEWER), "e2e-2": ("reject", REVIEWER)}
    assert json.loads(service.decisions["e2e-1"].output_json or "") == corrected
    assert service.decisions["e2e-2"].reason == "Summary invents a refund we never offered"
    refused = next(d for d in service.drafts if d.item_id == "e2e-1" and d.action == "edit")
    assert refused.output_json == '{"category": "bug"}'
