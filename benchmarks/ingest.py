"""Ingestion speed on the real catalogs: a first ingest into an empty warehouse, then unchanged re-ingests.

Goal (issue 2): the whole Fashion Product Images folder in under 20 s on a 2-core machine; an
unchanged re-ingest in under 5 s. Run from the repo root:

    python benchmarks/ingest.py            # writes the "Ingestion" section of BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import stamp, write_section  # noqa: E402

from warehouse import open_warehouse  # noqa: E402
from warehouse.ingest import ingest  # noqa: E402

DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=Path, default=DATASETS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for name in ("fashion-product-images", "myntra-products"):
        src = args.datasets / name
        with tempfile.TemporaryDirectory() as d:
            wh = open_warehouse(d)
            for label in ("first ingest", "re-ingest, unchanged", "re-ingest, unchanged"):
                t = time.perf_counter()
                s = ingest(wh, src)
                secs = time.perf_counter() - t
                rows.append(
                    f"| {name} | {label} | {s.rows} | {s.new} / {s.updated} / {s.unchanged} | {s.repaired} | {s.rejected} "
                    f"| {s.images_missing} / {s.images_unreadable} | **{secs:.2f}** |"
                )
                print(rows[-1], flush=True)
    body = (
        stamp("python benchmarks/ingest.py")
        + "\nGoal: Fashion Product Images (35.5k rows, 35.5k images) first ingest < 20 s, unchanged re-ingest < 5 s. "
        "The first ingest reads, hashes and decodes every image (2 processes); a re-ingest only stats them.\n\n"
        "| catalog | run | rows | new / updated / unchanged | repaired | rejected | images missing / unreadable | seconds |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    print(body)
    if not args.no_write:
        write_section("Ingestion", body)


if __name__ == "__main__":
    main()
