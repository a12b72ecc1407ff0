"""`vitrine demo`, the README's main command, end to end on the bundled real sample."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

MINILM = "models--sentence-transformers--all-MiniLM-L6-v2"


def seeded() -> bool:
    home = os.environ.get("HF_HOME")
    return bool(home) and (Path(home) / "hub" / MINILM).is_dir()


@pytest.mark.skipif(not seeded(), reason="the demo's models need a seeded HF_HOME (bash .ci/setup-env does it)")
def test_demo_runs_end_to_end(tmp_path, cli):
    wh = tmp_path / "demo-wh"
    p = cli("--warehouse", str(wh), "demo", timeout=900)
    out = p.stdout
    assert "reclassification candidates" in out and "try these" in out
    assert "article_type" in out and "test accuracy" in out
    n = cli("sql", "SELECT count(DISTINCT product_id) FROM latest_predictions", "--format", "csv", warehouse=wh).stdout.splitlines()[1]
    assert int(n) == 403
    runs = cli("sql", "SELECT DISTINCT status FROM runs", "--format", "csv", warehouse=wh).stdout.splitlines()[1:]
    assert runs == ["completed"]
