"""Do hashed catalog columns lose anything against an exact one-hot? Myntra log price, one ridge.

The `columns` encoder hashes each categorical value (brand, gender, colour, number of photos) to
a slot. When the slots were a one-hot of fixed width, two brands could share a slot and the heads
could not tell them apart. This fits the same ridge (title character 2-4-gram TF-IDF plus the
columns) on the train rows of a quality run, alpha picked on its validation rows, once with an
exact one-hot of the columns (scikit-learn's OneHotEncoder, fitted on the train rows) and once
per slot count with the columns as vitrine encodes them (`features.encoders.columns`, expanded
as `heads.features` does), and counts how many distinct training values share a slot.

    python benchmarks/quality.py --skip fashion --columns --myntra-configs text+columns --heads linear --work /tmp/vq
    python benchmarks/columns_collisions.py --work /tmp/vq --write
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.preprocessing import OneHotEncoder  # noqa: E402

from features.encoders.columns import MAX_SLOTS, codes, parse_model, sources, vectors  # noqa: E402
from heads.features import column_vocabulary  # noqa: E402
import price_ceiling  # noqa: E402
from report import command_line, publish, stamp, table  # noqa: E402

SLOTS = (2048, 16384, MAX_SLOTS)


RIDGE_COLUMNS = ["alpha", "R² log (val)", "R² log (test)"]  # what ridge() returns, as table columns
RIDGE_FORMATS = ["{}", "{}", "{}", "{}", "{:.4f}", "{:.4f}"]  # a row: name, two counts, then ridge()'s three


def ridge(x, y, m) -> tuple[float, float, float]:
    """(alpha, validation R², test R²) of the ridge whose alpha is best on validation."""
    best = None
    for a in (0.1, 0.3, 1.0, 3.0):
        reg = Ridge(alpha=a).fit(x[m["train"]], y[m["train"]])
        v = r2_score(y[m["val"]], reg.predict(x[m["val"]]))
        if best is None or v > best[1]:
            best = (a, v, r2_score(y[m["test"]], reg.predict(x[m["test"]])))
    return best


def hashed(cats: list[list[str]], slots: int, train: np.ndarray) -> tuple[sp.csr_matrix, int, int]:
    """The columns as vitrine encodes them at `slots` slots, expanded over the codes of all rows;
    and (distinct training values, distinct training codes): their difference is the collisions."""
    names = [c for c in price_ceiling.CATEGORICAL]
    lay = parse_model(f"cat={','.join(names)};num=;slots={slots}")
    frame = pa.table({c: [row[k] for row in cats] for k, c in enumerate(names)})
    rows, code, vals = codes(vectors(sources(frame, lay), lay), lay)
    vocab = column_vocabulary(lay, code, ())
    x = sp.csr_matrix((vals, (rows, np.searchsorted(vocab, code))), shape=(len(cats), len(vocab)))
    tr_values = len({(k, str(v).strip().lower()) for i in train for k, v in enumerate(cats[i])})
    tr_codes = len(np.unique(code[np.isin(rows, train)]))
    return x, tr_values, tr_codes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vitrine-quality"), help="a Myntra quality run's scratch folder")
    ap.add_argument("--write", action="store_true", help="write into BENCHMARKS.md")
    args = ap.parse_args(argv)
    titles, cats, y, masks, model_id = price_ceiling.load(args.work)
    m = {k: np.flatnonzero(v) for k, v in masks.items()}
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), binary=True).fit([titles[i] for i in m["train"]])
    tx = chars.transform(titles)
    rows = []
    onehot = OneHotEncoder(handle_unknown="ignore").fit([cats[i] for i in m["train"]]).transform(cats)
    a, v, t = ridge(sp.hstack([tx, onehot]).tocsr(), y, m)
    rows.append(("exact one-hot (OneHotEncoder)", "–", "0", a, v, t))
    for slots in SLOTS:
        x, n_values, n_codes = hashed(cats, slots, m["train"])
        a, v, t = ridge(sp.hstack([tx, x]).tocsr(), y, m)
        rows.append((f"vitrine columns, {slots:,} slots per column", f"{n_values:,}", f"{n_values - n_codes:,}", a, v, t))
    brands = len({cats[i][0] for i in m["train"]})
    cmd = command_line(__file__, argv)
    lines = [stamp(cmd),
             f"Myntra log price, train / val / test rows of price model `{model_id}` "
             f"({len(m['train'])} / {len(m['val'])} / {len(m['test'])}); {brands} brands in the train rows. "
             "Ridge on title character 2-4-gram TF-IDF plus the columns brand, gender, primary_colour and "
             "num_images; alpha picked on validation.", "",
             *table(["columns as", "distinct train values", "values lost to shared slots", *RIDGE_COLUMNS], rows, RIDGE_FORMATS)]
    publish(lines, "Catalog columns: hashed slots and collisions", args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
