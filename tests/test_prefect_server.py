"""README's "Against a Prefect server with a worker", step by step, on a real `prefect server`.

The server, `prefect deploy`, the deployment run, the worker and the artifact are the real
commands in subprocesses: a client/server mismatch (a fastapi the server rejects its own client's
bodies with) fails here, as it failed for users.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest_features import tiny_bert_dir, tiny_timm_ckpt  # noqa: F401  (fixtures)
from pipeline import make_shop, pipeline_settings
from warehouse import open_warehouse
from warehouse.views import connect

REPO = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"prefect server exited {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"prefect server at {url} not healthy after {timeout} s")


@pytest.fixture
def prefect_server(tmp_path):
    """A real `prefect server start` with a home of its own; yields the client environment."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               DO_NOT_TRACK="1", PREFECT_UI_ENABLED="false", COLUMNS="200")
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(api, server)
        yield {**env, "PREFECT_API_URL": api}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def prefect(env: dict, *args: str, timeout: float = 300) -> str:
    p = subprocess.run([PREFECT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"prefect {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def test_deploy_and_worker_run_the_nightly_on_a_real_server(tmp_path, prefect_server, cli, tiny_bert_dir, tiny_timm_ckpt):
    src = make_shop(tmp_path / "cat", 24)
    s = pipeline_settings(tmp_path, tiny_bert_dir, tiny_timm_ckpt, schedule={"source": str(src)})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(s.model_dump(mode="json")))
    for step in ("ingest", "encode", "train"):  # a model to score with, as after the quickstart
        cli(step, *([str(src)] if step == "ingest" else []), config=config)

    env = {**prefect_server, "VITRINE_HOME": str(REPO), "VITRINE_CONFIG": str(config)}
    prefect(env, "work-pool", "create", "vitrine", "--type", "process")
    out = prefect(env, "--no-prompt", "deploy", "--all")
    assert "vitrine-nightly/nightly" in out
    prefect(env, "deployment", "run", "vitrine-nightly/nightly")
    prefect(env, "worker", "start", "--pool", "vitrine", "--run-once", timeout=600)

    wh = open_warehouse(s.warehouse.path)
    con = connect(wh, s.score.reclass_threshold)
    assert con.execute("SELECT flow, status FROM runs WHERE flow = 'nightly'").fetchall() == [("nightly", "completed")]
    assert con.execute("SELECT count(DISTINCT product_id) FROM latest_predictions").fetchone() == (24,)

    # the run summary as the UI shows it under Artifacts
    listed = prefect(env, "artifact", "ls")
    assert "vitrine-nightly-summary" in listed
    shown = prefect(env, "artifact", "inspect", "vitrine-nightly-summary")
    assert "Top reclassification candidates" in shown


@pytest.mark.skipif(shutil.which("duckdb", path=str(Path(sys.executable).parent)) is None,
                    reason="the duckdb CLI (pip install duckdb-cli, in the test extra) is not installed")
def test_duckdb_cli_opens_the_warehouse_read_only_from_anywhere(tmp_path, tiny_bert_dir, tiny_timm_ckpt, cli):
    src = make_shop(tmp_path / "cat", 12)
    s = pipeline_settings(tmp_path, tiny_bert_dir, tiny_timm_ckpt)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(s.model_dump(mode="json")))
    for step in ("ingest", "encode", "train", "predict"):
        cli(step, *([str(src)] if step == "ingest" else []), config=config)

    wh = open_warehouse(s.warehouse.path)
    views = [r[0] for r in connect(wh).execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1").fetchall()]
    assert {"products", "latest_predictions", "reclassification_candidates"} <= set(views)
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    duckdb_cli = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    sql = "".join(f"SELECT '{v}', count(*) FROM {v};\n" for v in views)
    p = subprocess.run([duckdb_cli, "-readonly", "-csv", "-noheader", str(wh.db_path)], input=sql,
                       cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Error" not in p.stderr, p.stderr
    counts = dict(line.split(",") for line in p.stdout.split())
    assert set(counts) == set(views)
    assert counts["products"] == "12" and int(counts["latest_predictions"]) == 12 * 3
