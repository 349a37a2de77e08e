"""`keel ...` run as a user runs it: a process of its own, from the repository's root."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from streams.core.settings import REPO_ROOT


def run_keel(*args: str, env: Mapping[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """``keel ARGS`` with exactly ``env`` as its environment; its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO_ROOT,
        check=False,
    )
