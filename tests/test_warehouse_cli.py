"""The `vitrine` command as users run it: config errors, locks, concurrent reads, killed writers."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq

from catalogs import defective_fashion, fashion_rows, write_fashion


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def hold_lock(wh: Path, marker: Path, seconds: float) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        import time, pathlib
        from warehouse import open_warehouse
        from warehouse.locks import writer_lock
        with writer_lock(open_warehouse({str(wh)!r}), timeout=-1):
            pathlib.Path({str(marker)!r}).write_text("held")
            time.sleep({seconds})
        """
    )
    return subprocess.Popen([sys.executable, "-c", code])


def test_ingest_sql_status_end_to_end(tmp_path, cli):
    src = defective_fashion(tmp_path / "cat")
    wh = tmp_path / "wh"
    p = cli("ingest", str(src), warehouse=wh)
    assert "rejected" in p.stdout and "repaired" in p.stdout
    assert (wh / "vitrine.duckdb").exists() and (wh / "products" / "products.parquet").exists()
    rows = json.loads(cli("sql", "SELECT product_id, image_status FROM products ORDER BY product_id", "--format", "json", warehouse=wh).stdout)
    assert {"product_id": "1000", "image_status": "missing"} in rows
    csv_out = cli("sql", "SELECT count(*) AS n FROM rejects", "--format", "csv", warehouse=wh).stdout
    assert csv_out.splitlines() == ["n", "4"]
    status = cli("status", warehouse=wh).stdout
    assert "products" in status and "ingest" in status and "completed" in status
    bad = cli("sql", "SELECT nope FROM products", warehouse=wh, check=False)
    assert bad.returncode == 2 and "query failed" in bad.stderr and "Traceback" not in bad.stderr


def test_duckdb_file_holds_the_views(tmp_path, cli):
    import duckdb

    wh = tmp_path / "wh"
    cli("ingest", str(write_fashion(tmp_path / "cat", fashion_rows(5))), warehouse=wh)
    con = duckdb.connect(str(wh / "vitrine.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM products").fetchone()[0] == 5


def test_bad_configs_name_the_key_and_file(tmp_path, cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("warehouse:\n  lock_timeout: 3\n")
    p = cli("status", config=cfg, check=False)
    assert p.returncode == 2 and "warehouse.lock_timeout: unknown key" in p.stderr and str(cfg) in p.stderr
    cfg.write_text("encode:\n  batch_size: many\n")
    p = cli("status", config=cfg, check=False)
    assert p.returncode == 2 and "encode.batch_size" in p.stderr and "integer" in p.stderr
    p = cli("--config", str(tmp_path / "missing.yaml"), "status", check=False)
    assert p.returncode == 2 and "config file not found" in p.stderr
    assert "Traceback" not in p.stderr


def test_second_writer_stops_clearly_while_readers_go_on(tmp_path, cli):
    wh = tmp_path / "wh"
    src = write_fashion(tmp_path / "cat", fashion_rows(5))
    cli("ingest", str(src), warehouse=wh)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("warehouse:\n  lock_timeout_s: 0.5\n")
    marker = tmp_path / "held"
    holder = hold_lock(wh, marker, 60)
    try:
        wait_for(marker, holder)
        p = cli("ingest", str(src), warehouse=wh, config=cfg, check=False)
        assert p.returncode == 2 and "busy" in p.stderr and f"pid {holder.pid}" in p.stderr
        n = cli("sql", "SELECT count(*) AS n FROM products", "--format", "csv", warehouse=wh).stdout.splitlines()[1]
        assert n == "5"
    finally:
        holder.kill()
        holder.wait()
    cli("ingest", str(src), warehouse=wh, config=cfg)


def test_second_writer_waits_when_told_to(tmp_path, cli):
    wh = tmp_path / "wh"
    src = write_fashion(tmp_path / "cat", fashion_rows(5))
    marker = tmp_path / "held"
    holder = hold_lock(wh, marker, 2)
    wait_for(marker, holder)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("warehouse:\n  lock_timeout_s: 60\n")
    cli("ingest", str(src), warehouse=wh, config=cfg)
    assert holder.wait() == 0


def test_killed_ingest_leaves_previous_state(tmp_path, cli):
    wh = tmp_path / "wh"
    small = write_fashion(tmp_path / "small", fashion_rows(5))
    cli("ingest", str(small), warehouse=wh)
    before = (wh / "products" / "products.parquet").read_bytes()
    big = write_fashion(tmp_path / "big", fashion_rows(300, start=7000))
    marker = tmp_path / "mid-ingest"
    code = textwrap.dedent(
        f"""
        import pathlib, time
        from warehouse import open_warehouse
        from warehouse.ingest import ingest
        def on_progress(stage, n, total):
            pathlib.Path({str(marker)!r}).write_text(stage)
            time.sleep(0.2)  # keep the writer mid-flight until the test kills it
        ingest(open_warehouse({str(wh)!r}), {str(big)!r}, on_progress=on_progress)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (wh / "products" / "products.parquet").read_bytes() == before
    assert pq.read_table(wh / "products" / "products.parquet").num_rows == 5
    cli("ingest", str(big), warehouse=wh)
    n = cli("sql", "SELECT count(*) FROM products", "--format", "csv", warehouse=wh).stdout.splitlines()[1]
    assert n == "305"
    assert not list(wh.rglob(".tmp-*"))
