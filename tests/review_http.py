"""Helpers for tests of the review web server: a users file with an admin and a reviewer, logging a test
client in through the real login form, and reading the CSRF token off a page."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from streams.review.users import ScryptCost, UserFile

# Hashes in tests are cheap (about 4 ms instead of half a second); test_review_auth.py checks the real cost.
TEST_COST = ScryptCost(n=2**10, r=8, p=1)
ADMIN, ADMIN_PASSWORD = "ada", "ada-correct-horse"
REVIEWER, REVIEWER_PASSWORD = "rob", "rob-battery-staple"
REVIEWER_AGENTS = ["support_triage"]


def make_users(directory: Path) -> UserFile:
    users = UserFile(directory / "reviewers.yaml", cost=TEST_COST)
    users.put(ADMIN, password=ADMIN_PASSWORD, role="admin", agents=[])
    users.put(REVIEWER, password=REVIEWER_PASSWORD, role="reviewer", agents=REVIEWER_AGENTS)
    return users


def basic(name: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name} on the page"
    return found.group(1)


async def post_login(
    client: TestClient, name: str, password: str, *, page: str = "/login", echo: tuple[str, ...] = (), **fields: str
) -> ClientResponse:
    """Submit the login form ``page`` serves: its login token, ``name`` and ``password``, the hidden fields
    named in ``echo`` as the form has them, and ``fields``; the answer, not followed if it redirects."""
    form_page = await (await client.get(page)).text()
    data = {"username": name, "password": password, "login_token": hidden(form_page, "login_token")}
    data |= {field: hidden(form_page, field) for field in echo} | fields
    return await client.post("/login", data=data, allow_redirects=False)


async def login(client: TestClient, name: str, password: str) -> None:
    response = await post_login(client, name, password, next="/")
    assert response.status == 303, await response.text()


async def csrf_token(client: TestClient, path: str = "/") -> str:
    return hidden(await (await client.get(path)).text(), "csrf")
