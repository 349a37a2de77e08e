"""`python -m connectors.crm`: the example CRM refuses to start without its token, and serves the
shipped samples' customers behind it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from connectors.crm.__main__ import main
from streams.cli.local_stack import crm_process


def test_without_a_token_it_does_not_start(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CRM_API_TOKEN", raising=False)
    assert main(["--port", "0"]) == 2
    assert "CRM_API_TOKEN" in capsys.readouterr().err


def test_it_serves_the_samples_customers_to_its_token_only(tmp_path: Path) -> None:
    with crm_process(tmp_path, "unit-crm-token") as url:
        ok = httpx.get(f"{url}/customers/cust_dcb2a2f8a5", headers={"Authorization": "Bearer unit-crm-token"})
        refused = httpx.get(f"{url}/customers/cust_dcb2a2f8a5", headers={"Authorization": "Bearer wrong"})
    assert ok.status_code == 200 and ok.json()["name"] == "Daniel Brown" and "account_status" in ok.json()
    assert refused.status_code == 401
    assert "unit-crm-token" not in (tmp_path / "logs" / "crm.log").read_text()
