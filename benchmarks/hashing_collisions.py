"""Do hashed title n-grams lose anything against an exact TF-IDF vocabulary? Myntra log price, one ridge.

The `hashing` encoder maps each word or character n-gram of a title to a slot. In the dense layout
(`char_wb:2-4:4096`) the vector is 4,096 slots wide and thousands of n-grams share a slot; with
`max_ngrams` each title stores its n-grams' slot numbers over 2**20 slots and a trained model reads
them over the n-grams its rows hold (`heads.features.slot_presence`). This fits the same ridge
(the title's character 2-4-grams, IDF-weighted as the linear head weighs them, plus an exact
one-hot of brand, gender, colour and photo count) on the train rows of a quality run, alpha picked
on its validation rows, with the n-grams from scikit-learn's TfidfVectorizer (a fitted vocabulary:
no collisions), from the dense layout at two widths, and from the slot layout, and counts how many
distinct training n-grams share a slot with another.

    python benchmarks/quality.py --skip fashion --columns --myntra-configs text+columns --heads linear --work /tmp/vq
    python benchmarks/hashing_collisions.py --work /tmp/vq --write
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer  # noqa: E402
from sklearn.preprocessing import OneHotEncoder  # noqa: E402

from features.encoders.hashing import HashingEncoder  # noqa: E402
from heads.features import slot_presence  # noqa: E402
from columns_collisions import RIDGE_COLUMNS, RIDGE_FORMATS, ridge  # noqa: E402
import price_ceiling  # noqa: E402
from report import command_line, publish, stamp, table  # noqa: E402


def encoded(titles: list[str], model: str) -> np.ndarray:
    """What `vitrine encode` stores for these titles with this hashing model."""
    enc = HashingEncoder(f"hashing:{model}:none:title", model)
    return np.vstack([enc.tokenize(titles[i:i + 4096]).numpy() for i in range(0, len(titles), 4096)])


def idf(x, train: np.ndarray) -> sp.csr_matrix:
    """IDF-weighted and L2-normalised on the train rows, as heads.sparse_inputs does for the linear head."""
    x = sp.csr_matrix(x, dtype=np.float64)
    return sp.csr_matrix(TfidfTransformer().fit(x[train]).transform(x))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vitrine-quality"), help="a Myntra quality run's scratch folder")
    ap.add_argument("--write", action="store_true", help="write into BENCHMARKS.md")
    args = ap.parse_args(argv)
    titles, cats, y, masks, model_id = price_ceiling.load(args.work)
    m = {k: np.flatnonzero(v) for k, v in masks.items()}
    tr = m["train"]
    onehot = OneHotEncoder(handle_unknown="ignore").fit([cats[i] for i in tr]).transform(cats)
    exact = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), binary=True).fit([titles[i] for i in tr])
    n_grams = len(exact.vocabulary_)
    rows = []

    def add(name, x, width, lost):
        a, v, t = ridge(sp.hstack([x, onehot]).tocsr(), y, m)
        rows.append((name, width, lost, a, v, t))
        print(rows[-1], flush=True)

    add("fitted vocabulary (TfidfVectorizer, train rows)", exact.transform(titles), f"{n_grams:,}", "0")
    for dim in (4096, 16384):
        x = sp.csr_matrix(encoded(titles, f"char_wb:2-4:{dim}"))
        used = len(np.unique(x[tr].indices))
        add(f"dense layout `char_wb:2-4:{dim}`", idf(x, tr), f"{dim:,}", f"{n_grams - used:,}")
    slots = encoded(titles, "char_wb:2-4:1048576;max_ngrams=512")
    used = len(slot_presence(slots[tr], None, 1, 1 << 24)[1])
    for min_df in (1, 2):  # the vocabulary as `vitrine train` picks it: over every product it reads
        x, vocab = slot_presence(slots, None, min_df=min_df, max_codes=1 << 24)
        add(f"slot layout `char_wb:2-4:1048576;max_ngrams=512`, n-grams ≥ {min_df} products hold",
            idf(x, tr), f"{len(vocab):,}", f"{n_grams - used:,}")
    cmd = command_line(__file__, argv)
    lines = [stamp(cmd),
             f"Myntra log price, train / val / test rows of price model `{model_id}` "
             f"({len(tr)} / {len(m['val'])} / {len(m['test'])}); {n_grams:,} distinct character 2-4-grams in the "
             "train titles. Ridge on the title's n-grams (IDF-weighted, L2-normalised) plus an exact one-hot of "
             f"{', '.join(price_ceiling.CATEGORICAL)}; alpha picked on validation. `n-grams lost to shared slots`: the distinct "
             "train n-grams less the slots they occupy (n-grams that found their slot taken by another).", "",
             *table(["title n-grams as", "inputs", "n-grams lost to shared slots", *RIDGE_COLUMNS], rows, RIDGE_FORMATS)]
    publish(lines, "Hashed title n-grams: slots and collisions", args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
