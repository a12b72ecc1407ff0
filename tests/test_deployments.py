"""`vitrine serve` against a real local Prefect server: the nightly deployment and its schedule."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return 0, None


def wait_json(url: str, proc: subprocess.Popen, timeout: float) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        code, body = get_json(url)
        if code == 200:
            return body
        assert proc.poll() is None, f"process exited {proc.returncode}: {proc.args}"
        time.sleep(1)
    raise AssertionError(f"{url} not ready after {timeout}s")


def test_serve_registers_nightly_with_its_schedule(tmp_path):
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"warehouse:\n  path: {tmp_path / 'wh'}\nschedule:\n  cron: '15 3 * * 1-5'\n  timezone: Europe/Berlin\n  source: {tmp_path / 'catalog'}\n")
    prefect_bin = str(Path(sys.executable).parent / "prefect")
    logs = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([prefect_bin, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=logs, stderr=subprocess.STDOUT)
    serve = None
    try:
        wait_json(f"{api}/health", server, 180)
        serve = subprocess.Popen([sys.executable, "-m", "flows.cli", "--config", str(cfg), "serve"], env=env, stdout=logs, stderr=subprocess.STDOUT)
        dep = wait_json(f"{api}/deployments/name/vitrine-nightly/nightly", serve, 180)
        (sched,) = dep["schedules"]
        assert sched["schedule"]["cron"] == "15 3 * * 1-5"
        assert sched["schedule"]["timezone"] == "Europe/Berlin"
        assert sched["active"] is True
        assert dep["parameters"]["source"] == str(tmp_path / "catalog")
        assert dep["parameters"]["settings"]["warehouse"]["path"] == str(tmp_path / "wh")
        for flow in ("vitrine-ingest", "vitrine-encode", "vitrine-train", "vitrine-score", "vitrine-compact"):
            wait_json(f"{api}/deployments/name/{flow}/manual", serve, 60)
    finally:
        for p in (serve, server):
            if p is not None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        logs.close()
