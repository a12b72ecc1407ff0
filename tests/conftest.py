from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def run_cli(*args: str, warehouse: Path | None = None, config: Path | None = None, check: bool = True, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real `vitrine` command in a subprocess, as a user would."""
    e = {**os.environ, "COLUMNS": "200", **(env or {})}
    if warehouse is not None:
        e["VITRINE_WAREHOUSE"] = str(warehouse)
    if config is not None:
        e["VITRINE_CONFIG"] = str(config)
    p = subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, env=e, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"vitrine {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


@pytest.fixture
def cli():
    return run_cli
