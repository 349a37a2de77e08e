"""A worker with a broken agent definition refuses to start and says which file and field: a bad value,
or a tool the agent may not have (one its connector does not declare)."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from streams.core.settings import REPO_ROOT
from tests.keel_command import run_keel


def test_invalid_agent_definition_is_a_clear_startup_error(tmp_path: Path) -> None:
    definition = yaml.safe_load((REPO_ROOT / "deploy" / "agents" / "invoice_extraction.yaml").read_text())
    definition["model_chain"][0]["timeout_s"] = "soon"
    bad = tmp_path / "invoice_extraction.yaml"
    bad.write_text(yaml.safe_dump(definition))
    env = {**os.environ, "KEEL_AGENTS_DIR": str(tmp_path), "KEEL_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    done = run_keel("worker", env=env)
    assert done.returncode == 2
    assert f"{bad}: model_chain.0.timeout_s: Input should be a valid number" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_agent_allowed_a_tool_no_connector_declares_is_refused_at_start(tmp_path: Path) -> None:
    definition = yaml.safe_load((REPO_ROOT / "deploy" / "agents" / "support_triage.yaml").read_text())
    definition["tools"] = {"allow": ["crm.create_ticket", "crm.delete_customer", "billing.refund"]}
    bad = tmp_path / "support_triage.yaml"
    bad.write_text(yaml.safe_dump(definition))
    env = {
        **os.environ,
        "KEEL_AGENTS_DIR": str(tmp_path),
        "KEEL_AGENTS": '["support_triage"]',
        "KEEL_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "CRM_API_TOKEN": "never-used",
    }
    done = run_keel("worker", env=env)
    assert done.returncode == 2, done.stderr
    assert f"{bad}: tools.allow: crm.delete_customer: connector crm declares no tool 'delete_customer'" in done.stderr
    assert "tools.allow: billing.refund: no connector 'billing' is declared" in done.stderr
    assert "Traceback" not in done.stderr and "never-used" not in done.stderr


def test_a_crashed_app_exits_so_a_supervisor_restarts_it(tmp_path: Path) -> None:
    script = (
        "import asyncio\n"
        "from streams.core.settings import Settings\n"
        "from streams.apps.wiring import load_runtime\n"
        "from streams.apps.worker.shell import create_app\n"
        f"app = create_app(load_runtime(Settings(state_dir={str(tmp_path)!r})))\n"
        "asyncio.run(app.crash(RuntimeError('boom')))\n"
        "print('still running')\n"
    )
    env = {**os.environ, "CRM_API_TOKEN": "unused"}  # the shipped triage agent's connector needs a token
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 70
    assert "still running" not in done.stdout
    assert "the faust app crashed" in done.stderr and "boom" in done.stderr
