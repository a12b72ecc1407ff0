from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# Prefect keeps its database and settings in a home of the test session's own, and phones nowhere.
import tempfile  # noqa: E402

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="vitrine-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.pop("PREFECT_API_URL", None)

# Tests never reach for a model hub; the demo's real models come from the seeded cache, if any.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_seeded = Path(__file__).resolve().parent.parent / ".hf-cache"
if "HF_HOME" not in os.environ and _seeded.is_dir():
    os.environ["HF_HOME"] = str(_seeded)


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


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect API for the whole session (its start takes ~20 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def reclass_trained(tmp_path_factory):
    """The shop with planted wrong labels, trained out of fold and scored once per session."""
    from reclass_shop import build_shop

    tmp = tmp_path_factory.mktemp("reclass")
    s, src, model = build_shop(tmp)
    return tmp, s, src, model
