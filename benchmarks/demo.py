"""Wall time of `vitrine demo` (goal: under 5 minutes on a 2-core machine), per step and in total.

    HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/demo.py
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import stamp, write_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "flows.cli", "--warehouse", f"{d}/wh", "demo"], capture_output=True, text=True)
        total = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(p.stdout + p.stderr)
    steps = re.search(r"^time: (.*)$", p.stdout, re.M)
    cands = re.search(r"^(\d+) reclassification candidates", p.stdout, re.M)
    body = (
        stamp("HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/demo.py")
        + f"\n`vitrine demo` (403 bundled products, `configs/demo.yaml`: both heads) in a fresh warehouse: "
        f"**{total:.0f} s** in total, process start-up included (goal < 300 s). "
        f"Steps: {steps.group(1) if steps else 'n/a'}. Reclassification candidates found: {cands.group(1) if cands else 'n/a'}.\n"
    )
    print(body)
    if not args.no_write:
        write_section("Demo", body)


if __name__ == "__main__":
    main()
