"""The browser fixture: Debian's headless Chromium driven through Debian's chromedriver, against a review
server on loopback.

Selenium is given both programs' paths, so Selenium Manager is never started and nothing is downloaded
(SE_OFFLINE says the same to it, should anything start it anyway). ``make browser`` installs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from review_http import REVIEWER, REVIEWER_PASSWORD
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
    "--window-size=1400,1000",
)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            f"{CHROMIUM} and {CHROMEDRIVER} are needed: `make browser` installs Debian's chromium and chromium-driver"
        )
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):  # chromedriver is on loopback
        monkeypatch.delenv(proxy, raising=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_item(driver: webdriver.Chrome, item_id: str) -> None:
    WebDriverWait(driver, 15).until(expected_conditions.url_contains(f"/items/{item_id}"))
    WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located((By.ID, "summary")))


def press(driver: webdriver.Chrome, *keys: str) -> None:
    """Keys typed into whatever has the focus (the page itself unless a field has it)."""
    ActionChains(driver).send_keys(*keys).perform()


def ctrl(driver: webdriver.Chrome, key: str) -> None:
    ActionChains(driver).key_down(Keys.CONTROL).send_keys(key).key_up(Keys.CONTROL).perform()


def log_in(driver: webdriver.Chrome, base_url: str) -> None:
    driver.get(base_url + "/")
    WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located((By.ID, "username")))
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "username").send_keys(REVIEWER)
    driver.find_element(By.ID, "password").send_keys(REVIEWER_PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 15).until(expected_conditions.presence_of_element_located((By.ID, "queue")))
