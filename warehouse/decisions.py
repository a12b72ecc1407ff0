"""Reviewers' decisions about seller labels: the only way they are written, and how they apply.

Decisions are append-only files in `label_decisions/`, one per write under a unique name and
written without the warehouse writer lock: a reviewer never waits for a nightly encode or a
training job, and two reviewers writing at once cannot overwrite each other. A decision stays in
force while the listing has not been edited since (`decided_at >= products.updated_at`); an
`undo` row voids one decision. The `labels` view and `apply_decisions` (what training reads) say
which label is in force; the candidates view hides what a reviewer already settled.
"""
from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse import schemas
from warehouse.atomic import write_parquet_atomic
from warehouse.errors import VitrineError
from warehouse.layout import Warehouse
from warehouse.tables import read_dataset, replace_rejects
from warehouse.views import connect, ensure_decisions_seed, label_columns

UNDO = "undo"
IMPORT_COLUMNS = ("product_id", "target", "decision")


class DecisionError(VitrineError):
    """A decision that names an unknown product, target, label or decision value."""


class NotInQueue(DecisionError):
    """An accept or reject of a suggestion that is no longer open: decided already, or withdrawn."""


class UnknownProduct(DecisionError):
    """A decision about a product id the warehouse does not have."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def read_decisions(wh: Warehouse) -> pa.Table:
    return read_dataset(wh.decisions_dir, schemas.LABEL_DECISIONS)


def record_decisions(wh: Warehouse, rows: pa.Table | list[dict]) -> pa.Table:
    """Append rows (already validated) as one new file; fills decision_id and decided_at."""
    if isinstance(rows, pa.Table):
        rows = rows.to_pylist()
    now = _now()
    out = []
    for r in rows:
        r = {f.name: r.get(f.name) for f in schemas.LABEL_DECISIONS}
        r["decision_id"] = r["decision_id"] or uuid.uuid4().hex
        r["decided_at"] = r["decided_at"] or now
        if r["decision"] not in (*schemas.DECISIONS, UNDO):
            raise DecisionError(f"decision {r['decision']!r} is not one of {', '.join(schemas.DECISIONS)}")
        out.append(r)
    table = pa.Table.from_pylist(out, schema=schemas.LABEL_DECISIONS)
    if table.num_rows:
        ensure_decisions_seed(wh)
        name = f"d-{now.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:12]}.parquet"
        write_parquet_atomic(table, wh.decisions_dir / name)
    return table


def known_labels(wh: Warehouse, target: str, con: duckdb.DuckDBPyConnection | None = None) -> list[str]:
    """Labels a reviewer may give: any value of the column in the catalog, or one the model predicts."""
    if target not in label_columns(wh):
        raise DecisionError(f"unknown target {target!r}: the catalog's label columns are {', '.join(label_columns(wh)) or 'none'}")
    con = con or connect(wh)
    rows = con.execute(
        f'SELECT DISTINCT CAST("{target}" AS VARCHAR) AS l FROM products WHERE "{target}" IS NOT NULL '
        "UNION SELECT DISTINCT label FROM latest_predictions WHERE target = ? AND label IS NOT NULL",
        [target],
    ).fetchall()
    return sorted(r[0] for r in rows if r[0] != schemas.OTHER_LABEL)


@dataclass
class _Context:
    """What a decision about one (product, target) needs to know, read once."""

    con: duckdb.DuckDBPyConnection
    targets: list[str]
    labels: dict[str, set[str]] = field(default_factory=dict)

    def known(self, wh: Warehouse, target: str) -> set[str]:
        if target not in self.labels:
            self.labels[target] = set(known_labels(wh, target, self.con))
        return self.labels[target]


def _context(wh: Warehouse, reclass_threshold: float | None,
             con: duckdb.DuckDBPyConnection | None = None) -> _Context:
    if con is None:
        con = connect(wh) if reclass_threshold is None else connect(wh, reclass_threshold)
    return _Context(con, label_columns(wh))


def _resolve(wh: Warehouse, ctx: _Context, product_id: str, target: str, decision: str,
             label: str | None, seen: str | None = None) -> dict:
    """The row a decision writes, or DecisionError naming what is wrong."""
    if target not in ctx.targets:
        raise DecisionError(f"unknown target {target!r}: use one of {', '.join(ctx.targets) or 'none'}")
    prod = ctx.con.execute("SELECT content_hash FROM products WHERE product_id = ?", [product_id]).fetchone()
    if prod is None:
        raise UnknownProduct(f"unknown product {product_id!r}: it is not in the warehouse's products")
    in_force = ctx.con.execute("SELECT label FROM labels WHERE product_id = ? AND target = ?", [product_id, target]).fetchone()
    current = in_force[0] if in_force else None
    cand = ctx.con.execute(
        "SELECT suggested_label, model_id FROM reclassification_candidates WHERE product_id = ? AND target = ?",
        [product_id, target]).fetchone()
    suggested, model_id = cand if cand else (None, None)
    if seen is not None and suggested is not None and seen != suggested and decision in ("accept", "reject"):
        raise NotInQueue(f"the suggestion for {product_id!r} {target!r} is {suggested!r} now, not {seen!r}: "
                         "look at it again")
    if decision == "accept" and label is not None and label != suggested:
        decision = "relabel"
    if decision == "accept":
        if suggested is None:
            raise NotInQueue(f"product {product_id!r} has no open suggestion for {target!r} (not a candidate, "
                             "or already decided): relabel it with --label LABEL instead")
        final = suggested
    elif decision == "reject":
        if suggested is None:
            raise NotInQueue(f"product {product_id!r} has no open suggestion for {target!r} to reject "
                             "(not a candidate, or already decided)")
        final = current
    elif decision == "relabel":
        if not label:
            raise DecisionError("relabel needs the new label (--label LABEL)")
        if label not in ctx.known(wh, target):
            raise DecisionError(f"unknown label {label!r} for {target!r}: give a label the catalog or the model knows")
        final = label
    else:
        raise DecisionError(f"decision {decision!r} is not one of {', '.join(schemas.DECISIONS)}")
    return {"product_id": product_id, "target": target, "seller_label": current, "suggested_label": suggested,
            "decision": decision, "final_label": final, "model_id": model_id, "content_hash": prod[0]}


def decide(wh: Warehouse, product_id: str, target: str, decision: str, label: str | None = None,
           decided_by: str | None = None, note: str | None = None, reclass_threshold: float | None = None,
           con: duckdb.DuckDBPyConnection | None = None, seen_suggestion: str | None = None) -> dict:
    """Record one reviewer decision; `accept` with a label other than the suggestion is a relabel.

    `reclass_threshold`: the one the reviewer's queue was listed with (`score.reclass_threshold`),
    so a candidate shown is a candidate decided on. `con`: the connection the queue was read
    from (the review page's `QueueReader` cursor), instead of a fresh one. `seen_suggestion`:
    the suggestion the reviewer was shown; if a new model changed it since, an accept or reject
    is refused (NotInQueue) rather than applied to a suggestion nobody saw.
    """
    row = _resolve(wh, _context(wh, reclass_threshold, con), product_id, target, decision, label, seen_suggestion)
    row.update(decided_by=decided_by, note=note)
    return record_decisions(wh, [row]).to_pylist()[0]


def decision_in_force(con: duckdb.DuckDBPyConnection, product_id: str, target: str) -> dict | None:
    """The newest decision still in force on (product, target), or None: who settled it, and how."""
    cur = con.execute(
        "SELECT decision_id, decision, seller_label, suggested_label, final_label, decided_by, decided_at "
        "FROM decisions_in_force WHERE product_id = ? AND target = ? "
        "ORDER BY decided_at DESC, decision_id DESC LIMIT 1", [product_id, target])
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def effective_decisions(wh: Warehouse) -> pa.Table:
    """Decisions not voided by an undo (undo rows themselves left out)."""
    d = read_decisions(wh)
    voided = set(pc.drop_null(pc.filter(d["undoes"], pc.equal(d["decision"], UNDO))).to_pylist())
    keep = [dec != UNDO and did not in voided for dec, did in zip(d["decision"].to_pylist(), d["decision_id"].to_pylist())]
    return d.filter(pa.array(keep, pa.bool_()))


def undo_last(wh: Warehouse, decided_by: str | None = None) -> dict | None:
    """Void the newest effective decision (of `decided_by`, if given); None if there is none."""
    eff = effective_decisions(wh)
    if decided_by is not None:
        eff = eff.filter(pc.equal(eff["decided_by"], decided_by))
    if eff.num_rows == 0:
        return None
    last = eff.sort_by([("decided_at", "descending"), ("decision_id", "descending")]).slice(0, 1).to_pylist()[0]
    row = {k: last[k] for k in ("product_id", "target", "seller_label", "suggested_label", "model_id", "content_hash")}
    row.update(decision=UNDO, final_label=last["seller_label"], decided_by=decided_by or last["decided_by"],
               undoes=last["decision_id"], note=f"undo {last['decision']} {last['final_label']}")
    return record_decisions(wh, [row]).to_pylist()[0]


def apply_decisions(wh: Warehouse, products: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    """Products with each label a reviewer corrected replaced by the decision's final label.

    Only decisions still in force count (made after the listing's last edit). Returns the table
    and, per target, how many labels differ from the seller's.
    """
    eff = effective_decisions(wh)
    if eff.num_rows == 0 or products.num_rows == 0:
        return products, {}
    con = duckdb.connect(":memory:")
    con.register("d", eff)
    con.register("p", products.select(["product_id", "updated_at"]))
    latest = con.execute(
        "SELECT product_id, target, final_label FROM ("
        "  SELECT d.*, row_number() OVER (PARTITION BY d.product_id, d.target ORDER BY d.decided_at DESC, d.decision_id DESC) rn"
        "  FROM d JOIN p USING (product_id) WHERE d.decided_at >= p.updated_at) WHERE rn = 1"
    ).to_arrow_table()
    counts: dict[str, int] = {}
    index = {pid: i for i, pid in enumerate(products["product_id"].to_pylist())}
    for target in set(latest["target"].to_pylist()):
        if target not in products.column_names:
            continue
        sel = latest.filter(pc.equal(latest["target"], target))
        col = pc.cast(products[target], pa.string()).to_pylist()
        n = 0
        for pid, final in zip(sel["product_id"].to_pylist(), sel["final_label"].to_pylist()):
            i = index[pid]
            if final is not None and final != col[i]:
                col[i], n = final, n + 1
        if n:
            pos = products.column_names.index(target)
            products = products.set_column(pos, pa.field(target, pa.string()), pa.array(col, pa.string()))
            counts[target] = n
    return products, counts


# -- import ------------------------------------------------------------------------------------


@dataclass
class ImportSummary:
    recorded: int
    rejected: int
    rejects: list[tuple[int, str]]  # (line, reason)


def _read_rows(path: Path) -> list[tuple[int, dict, str]]:
    """(line, row, raw) for every data row; CSV lines count the header as line 1."""
    if not path.exists():
        raise DecisionError(f"{path}: no such file")
    if path.suffix.lower() == ".parquet":
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as e:  # a damaged file is one clear refusal, not a traceback
            raise DecisionError(f"{path}: not a readable Parquet file ({e})") from e
        return [(i + 1, r, json.dumps(r, default=str)) for i, r in enumerate(rows)]
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in IMPORT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DecisionError(f"{path}: the header lacks {', '.join(missing)} (columns: {', '.join(f.name for f in schemas.LABEL_DECISIONS if f.name not in ('decision_id', 'undoes'))})")
        out = []
        for r in reader:
            raw = json.dumps(r, default=str)
            if None in r:  # more fields than the header names
                out.append((reader.line_num, {"__error__": "more fields than the header"}, raw))
                continue
            out.append((reader.line_num, {k: (v.strip() or None) if isinstance(v, str) else v for k, v in r.items()}, raw))
        return out


def _parse_time(v) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v if v is None or v.tzinfo else v.replace(tzinfo=timezone.utc)
    t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def import_decisions(wh: Warehouse, path: Path, decided_by: str | None = None,
                     reclass_threshold: float | None = None) -> ImportSummary:
    """Decisions made elsewhere (CSV or Parquet with the label_decisions columns).

    Good rows are recorded in one file; each bad row goes to `rejects` with its line and reason.
    """
    path = Path(path)
    ctx = _context(wh, reclass_threshold)
    good, bad = [], []
    for line, r, raw in _read_rows(path):
        try:
            if "__error__" in r:
                raise DecisionError(r["__error__"])
            for c in IMPORT_COLUMNS:
                if not r.get(c):
                    raise DecisionError(f"{c} is empty")
            decision = str(r["decision"]).strip().lower()
            label = r.get("final_label") if decision != "reject" else None
            row = _resolve(wh, ctx, str(r["product_id"]), str(r["target"]), decision,
                           str(label) if label is not None else None)
            try:
                decided_at = _parse_time(r.get("decided_at"))
            except ValueError:
                raise DecisionError(f"decided_at {r.get('decided_at')!r} is not an ISO time") from None
            row.update(decided_by=r.get("decided_by") or decided_by, note=r.get("note"), decided_at=decided_at)
            good.append(row)
        except DecisionError as e:
            bad.append((line, raw, str(e)))
    record_decisions(wh, good)
    now = _now()
    rejects = pa.table({
        "source": [f"review-import:{path.resolve()}"] * len(bad), "line": [b[0] for b in bad],
        "raw": [b[1] for b in bad], "reason": [b[2] for b in bad], "seen_at": [now] * len(bad)})
    replace_rejects(wh, f"review-import:{path.resolve()}", rejects.cast(schemas.REJECTS))
    return ImportSummary(len(good), len(bad), [(b[0], b[2]) for b in bad])
