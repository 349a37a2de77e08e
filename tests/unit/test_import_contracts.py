"""The import direction between packages (pyproject.toml, [tool.importlinter]) holds, and would catch a
pure module that imports a Kafka or HTTP client."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams.core.settings import REPO_ROOT

CONTRACTS = ("layers", "pure", "pure-review", "review-web", "connectors-importers", "connectors-core")


def lint_imports(root: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the tree at ``root`` (its pyproject.toml and packages), as `make lint` runs it."""
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo", *options]
    env = {**os.environ, "PYTHONPATH": str(root)}  # a copy's packages before the installed ones
    return subprocess.run(
        [*command, "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The packages and their contracts, copied: a copy to break."""
    for package in ("streams", "connectors"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    run = lint_imports(REPO_ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in run.stdout


@pytest.mark.parametrize("contract", CONTRACTS)
def test_each_contract_is_configured(contract: str) -> None:
    run = lint_imports(REPO_ROOT, "--contract", contract)
    assert "Contracts: 1 kept, 0 broken." in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("module", ["pipeline/fallback.py", "core/domain.py", "review/queue.py", "alerts/engine.py"])
def test_a_pure_module_importing_aiokafka_breaks_the_contract(tree_copy: Path, module: str) -> None:
    path = tree_copy / "streams" / module
    path.write_text(path.read_text() + "\nimport aiokafka  # noqa: E402, F401\n")
    run = lint_imports(tree_copy)
    assert run.returncode != 0
    dotted = "streams." + module.removesuffix(".py").replace("/", ".")
    assert f"{dotted} -> aiokafka" in run.stdout, run.stdout
    assert "BROKEN" in run.stdout


def test_connectors_importing_more_than_core_breaks_the_contract(tree_copy: Path) -> None:
    path = tree_copy / "connectors" / "models" / "openai_compat.py"
    path.write_text(path.read_text() + "\nimport streams.pipeline.fallback  # noqa: E402, F401\n")
    run = lint_imports(tree_copy)
    assert run.returncode != 0
    assert "connectors.models.openai_compat -> streams.pipeline.fallback" in run.stdout, run.stdout


def test_a_pure_package_importing_an_app_breaks_the_layers(tree_copy: Path) -> None:
    path = tree_copy / "streams" / "pipeline" / "fallback.py"
    path.write_text(path.read_text() + "\nimport streams.apps.faust_app  # noqa: E402, F401\n")
    run = lint_imports(tree_copy)
    assert run.returncode != 0
    assert "streams.pipeline.fallback -> streams.apps.faust_app" in run.stdout, run.stdout
