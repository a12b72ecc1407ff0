"""Peak memory of `vitrine encode` as the catalog grows: it should stay flat (vectors are streamed).

Ingests the first N products of Fashion Product Images into a fresh warehouse for each size, then
runs the real command `vitrine encode` in a child process and reads that child's peak RSS.

    HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/memory.py
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import command_line, stamp, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "fashion-product-images"

# Runs `vitrine encode` as a grandchild so that RUSAGE_CHILDREN is that one command's peak.
MEASURE = """
import resource, subprocess, sys, json, time
t = time.perf_counter()
p = subprocess.run([sys.executable, "-m", "flows.cli", *sys.argv[1:]], capture_output=True, text=True)
if p.returncode:
    sys.stderr.write(p.stdout + p.stderr); sys.exit(p.returncode)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def sample(n: int, folder: Path) -> Path:
    lines = (DATA / "styles.csv").read_text(encoding="utf-8").splitlines()
    (folder / "styles.csv").write_text("\n".join(lines[: n + 1]) + "\n", encoding="utf-8")
    (folder / "images").symlink_to(DATA / "images")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,4000,16000")
    ap.add_argument("--encoder", default="image", help="encoder name in configs/demo.yaml")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            (d / "cat").mkdir()
            src = sample(n, d / "cat")
            base = ["--config", str(ROOT / "configs" / "demo.yaml"), "--warehouse", str(d / "wh")]
            subprocess.run([sys.executable, "-m", "flows.cli", *base, "ingest", str(src)], check=True, capture_output=True)
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", MEASURE, *base, "encode", "--encoder", args.encoder], capture_output=True, text=True, env=os.environ)
            if out.returncode:
                raise SystemExit(out.stderr)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(f"| {n} | {m['seconds']:.0f} | {n / m['seconds']:.1f} | **{m['peak_rss_mb']:.0f}** |")
            print(rows[-1], flush=True)
    body = (
        stamp(command_line(__file__, prefix="HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 "))
        + f"\n`vitrine --config configs/demo.yaml encode --encoder {args.encoder}` on the first N products of Fashion "
        "Product Images, each in a fresh warehouse; peak RSS is that of the command's largest process (the main "
        "one or a DataLoader worker). Encoding keeps freed heap memory for the length of the run "
        "(`features/allocator.py`), so the peak includes what fragmentation holds back. Goal: flat as N grows.\n\n"
        "| products | seconds (incl. start-up and model load) | items/s | peak RSS (MB) |\n|---|---|---|---|\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_write:
        write_section("Memory", body)


if __name__ == "__main__":
    main()
