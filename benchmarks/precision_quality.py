"""Do the heads stay as accurate on bf16 vectors as on fp32 ones? (Fashion Product Images)

Two warehouses with the same products and the same hashing encoders: one whose neural encoders
(the demo's efficientnet-lite0 for photos, MiniLM for titles) ran in fp32, one where they ran in
bf16 (`encode.precision: bf16`). The same head, seed and split are trained on each, and the test
metrics compared target by target. Goal: accuracy within 0.002 on every target.

    HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 python benchmarks/precision_quality.py --work /tmp/vprec

`--fp32-warehouse DIR` starts from a warehouse already encoded in fp32 with configs/demo.yaml
(hard-linked, never written to); otherwise the catalog is ingested and encoded here first.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from features.encode import encode  # noqa: E402
from features.identity import encoder_id  # noqa: E402
from flows.settings import Settings, load_settings  # noqa: E402
from heads.train import train  # noqa: E402
from warehouse.ingest import ingest  # noqa: E402
from warehouse.layout import open_warehouse  # noqa: E402
from warehouse.locks import writer_lock  # noqa: E402
from report import command_line, stamp, write_section  # noqa: E402

CATALOG = ROOT.parent / "shared" / "datasets" / "fashion-product-images"


def linked_copy(src: Path, dst: Path) -> None:
    """A copy whose files are hard links: the warehouse only ever replaces files by rename."""
    shutil.copytree(src, dst, copy_function=os.link)


def encode_in(wh_root: Path, settings: Settings, precision: str, names: list[str] | None = None) -> dict:
    wh = open_warehouse(wh_root)
    st = settings.encode.model_copy(update={"precision": precision})
    with writer_lock(wh, timeout=-1):
        reports = encode(wh, settings.encoders, st, names=names, progress=False)
    return {r.name: (r.encoded, r.precision, r.bf16_cosine, round(r.seconds, 1)) for r in reports}


def trained_metrics(wh_root: Path, settings: Settings, head: str) -> tuple[dict, float]:
    wh = open_warehouse(wh_root)
    t = time.perf_counter()
    with writer_lock(wh, timeout=-1):
        (model,) = train(wh, settings, head=head, progress=False)
    return model.metrics["targets"], time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for the two warehouses")
    ap.add_argument("--fp32-warehouse", type=Path, help="a warehouse already encoded in fp32 with configs/demo.yaml")
    ap.add_argument("--head", default="mlp", choices=["mlp", "lightgbm"])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    settings = load_settings(ROOT / "configs" / "demo.yaml")
    # the heads' accuracy is the question: no label folds (they do not change the registered model)
    settings = settings.model_copy(update={"train": settings.train.model_copy(update={"label_folds": 0})})
    neural = [n for n, s in settings.encoders.items() if s.family != "hashing"]
    fp32, bf16 = args.work / "fp32", args.work / "bf16"
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not fp32.exists():
        if args.fp32_warehouse:
            linked_copy(args.fp32_warehouse, fp32)
        else:
            wh = open_warehouse(fp32)
            with writer_lock(wh, timeout=-1):
                ingest(wh, CATALOG, settings.ingest)
    print("fp32:", encode_in(fp32, settings, "fp32"), flush=True)
    if not bf16.exists():
        linked_copy(fp32, bf16)
        for n in neural:  # the same products and hashing vectors; the neural encoders again, in bf16
            shutil.rmtree(open_warehouse(bf16).embeddings_dir(encoder_id(settings.encoders[n])))
    encoded = encode_in(bf16, settings, "bf16", neural)
    print("bf16:", encoded, flush=True)
    m32, s32 = trained_metrics(fp32, settings, args.head)
    m16, s16 = trained_metrics(bf16, settings, args.head)
    rows = []
    worst = 0.0
    for target, parts in m32.items():
        a, b = parts["test"], m16[target]["test"]
        if "accuracy" in a:
            d = b["accuracy"] - a["accuracy"]
            worst = max(worst, abs(d))
            rows.append(f"| {target} | {a['accuracy']:.4f} | {b['accuracy']:.4f} | {d:+.4f} | "
                        f"{a['macro_f1']:.4f} | {b['macro_f1']:.4f} |")
    checks = "; ".join(f"{n}: mean {c[0]:.5f}, lowest {c[1]:.5f}" for n, (_, _, c, _) in encoded.items() if c)
    cmd = command_line(__file__, prefix="HF_HOME=$PWD/.hf-cache HF_HUB_OFFLINE=1 ")
    body = (
        stamp(cmd) + f"\nWall time {time.perf_counter() - t0:.0f}s. Fashion Product Images, every product; "
        f"`configs/demo.yaml` encoders; {args.head} head, seed and split as configured, trained once on fp32 vectors "
        f"({s32:.0f}s) and once on bf16 vectors ({s16:.0f}s) of {', '.join(neural)} (hashing encoders shared). "
        f"Metrics on the test split. bf16 runs' own first-batch check against fp32: {checks}.\n\n"
        "| target | accuracy fp32 | accuracy bf16 | difference | macro-F1 fp32 | macro-F1 bf16 |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\nLargest accuracy difference: **{worst:.4f}** (goal ≤ 0.002)."
    )
    print(body)
    if not args.no_write:
        write_section("Encoding precision: heads' accuracy", body)


if __name__ == "__main__":
    main()
