"""`keel run` (behind `make run`) on the real broker, with the simulator in place of the local model:
it starts the example CRM the shipped ``crm`` connector reaches, and its live view shows each support
ticket's CRM lookup; every event ends and the summary says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from harness import free_port

from streams.core.settings import REPO_ROOT

pytestmark = pytest.mark.integration
EVENTS = 12


def test_keel_run_starts_the_crm_and_shows_each_tickets_lookup(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KEEL_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KEEL_STATE_DIR": str(tmp_path),
        "KEEL_REVIEW_WEB_PORT": str(free_port()),
    }
    env.pop("CRM_API_TOKEN", None)  # the run makes its own
    env.pop("KEEL_CONNECTORS_DIR", None)
    command = [sys.executable, "-m", "streams.cli", "run", "--provider", "sim", "--events", str(EVENTS)]
    run = subprocess.run(
        [*command, "--timeout-s", "300"],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    summary = orjson.loads(run.stdout.strip().splitlines()[-1])
    assert summary["events"] == EVENTS and summary["missing"] == 0, summary
    assert "example CRM" in run.stderr
    # half the events are support tickets (the rest invoices): each looked its customer up, once
    lookups = [line for line in run.stdout.splitlines() if line.endswith(" ms)") and " tools: " in line]
    assert len(lookups) == EVENTS // 2, run.stdout
    assert all(" tools: crm.lookup_customer ok (" in line for line in lookups), lookups
    assert not list(tmp_path.glob("run-connectors-*"))  # the run's copy of the connector files is gone
