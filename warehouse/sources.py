"""Readers for raw catalogs: each turns a source into clean records plus rejects.

A record is a dict of product columns (snake_case) with `product_id`, `title` and `image_path`;
a reject keeps the line number and the raw text so nothing read is ever lost. Repairs are made only
where the meaning is unambiguous, and are counted.
"""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from warehouse.errors import VitrineError
from warehouse.settings import GenericSource

NULLS = {"", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"}


class SourceError(VitrineError):
    """The source as a whole cannot be read (unknown layout, missing file, missing column)."""


@dataclass
class Parsed:
    """What a source reader yields: records, rejects, and how many rows it repaired."""

    source: str
    records: list[dict] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (line, raw, reason)
    repaired: int = 0
    numeric: dict[str, type] = field(default_factory=dict)  # column -> int | float


def clean(value: object) -> str | None:
    """Strip a raw field; literal NA-like markers and empty strings become NULL."""
    if value is None:
        return None
    s = str(value).strip()
    return None if s in NULLS else s


def snake(name: str) -> str:
    """`masterCategory` -> `master_category`, `Price (INR)` -> `price_inr`."""
    s = re.sub(r"\(.*?\)", "", name).strip()
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", s)
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()


def _lines_with_raw(path: Path) -> tuple[Iterator[str], list[str]]:
    """Feed csv.reader line by line while keeping the raw text of the current record."""
    buf: list[str] = []

    def gen() -> Iterator[str]:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                buf.append(line)
                yield line

    return gen(), buf


def _parse_number(value: str | None, kind: type) -> int | float | None:
    if value is None:
        return None
    v = value.replace(",", "") if kind is float else value
    return kind(float(v)) if kind is int and re.fullmatch(r"-?\d+(\.0+)?", v) else kind(v)


# -- Fashion Product Images -------------------------------------------------------------------

FASHION_COLUMNS = [
    "id", "gender", "masterCategory", "subCategory", "articleType",
    "baseColour", "season", "year", "usage", "productDisplayName",
]


def read_fashion(folder: Path) -> Parsed:
    """styles.csv is unquoted: a title with commas spills into extra fields.

    The title is the last column, so the spill is unambiguous: extra fields are joined back
    into the title with the commas they were split on.
    """
    path = folder / "styles.csv"
    images = folder / "images"
    out = Parsed(source=f"fashion-product-images:{path}", numeric={"year": int})
    lines, buf = _lines_with_raw(path)
    reader = csv.reader(lines)
    header = next(reader, None)
    buf.clear()
    if header is None or [h.strip() for h in header[:10]] != FASHION_COLUMNS:
        raise SourceError(f"{path}: header is not the Fashion Product Images layout ({','.join(FASHION_COLUMNS)})")
    n = len(FASHION_COLUMNS)
    for fields in reader:
        raw = "".join(buf).rstrip("\r\n")
        buf.clear()
        line = reader.line_num
        if not raw.strip():
            continue
        if len(fields) < n:
            out.rejects.append((line, raw, f"expected {n} fields, got {len(fields)}"))
            continue
        if len(fields) > n:
            fields = fields[: n - 1] + [",".join(fields[n - 1 :])]
            out.repaired += 1
        values = dict(zip(FASHION_COLUMNS, (clean(f) for f in fields)))
        pid = values.pop("id")
        if pid is None:
            out.rejects.append((line, raw, "empty id"))
            continue
        rec = {"product_id": pid, "title": values.pop("productDisplayName")}
        rec.update({snake(k): v for k, v in values.items()})
        try:
            rec["year"] = _parse_number(rec["year"], int)
        except ValueError:
            out.rejects.append((line, raw, f"year {rec['year']!r} is not a whole number"))
            continue
        rec["image_path"] = str(images / f"{pid}.jpg")
        out.records.append(rec)
        out.lines.append(line)
        out.raws.append(raw)
    return out


# -- Myntra catalog ---------------------------------------------------------------------------

MYNTRA_COLUMNS = {
    "ProductID": "product_id",
    "ProductName": "title",
    "ProductBrand": "brand",
    "Gender": "gender",
    "Price (INR)": "price",
    "NumImages": "num_images",
    "Description": "description",
    "PrimaryColor": "primary_colour",
}


def read_myntra(path: Path) -> Parsed:
    """products.csv is properly quoted (descriptions span lines); it has no images."""
    out = Parsed(source=f"myntra:{path}", numeric={"price": float, "num_images": int})
    lines, buf = _lines_with_raw(path)
    reader = csv.reader(lines)
    header = next(reader, None)
    buf.clear()
    if header is None or [h.strip() for h in header] != list(MYNTRA_COLUMNS):
        raise SourceError(f"{path}: header is not the Myntra layout ({','.join(MYNTRA_COLUMNS)})")
    for fields in reader:
        raw = "".join(buf).rstrip("\r\n")
        buf.clear()
        line = reader.line_num - raw.count("\n")
        if not raw.strip():
            continue
        if len(fields) != len(MYNTRA_COLUMNS):
            out.rejects.append((line, raw, f"expected {len(MYNTRA_COLUMNS)} fields, got {len(fields)}"))
            continue
        rec = {dst: clean(v) for dst, v in zip(MYNTRA_COLUMNS.values(), fields)}
        if rec["product_id"] is None:
            out.rejects.append((line, raw, "empty ProductID"))
            continue
        bad = _parse_numbers(rec, out.numeric)
        if bad:
            out.rejects.append((line, raw, bad))
            continue
        rec["image_path"] = None
        out.records.append(rec)
        out.lines.append(line)
        out.raws.append(raw)
    return out


def _parse_numbers(rec: dict, numeric: dict[str, type]) -> str | None:
    """Parse numeric columns in place; return a reject reason for the first that does not parse."""
    for col, kind in numeric.items():
        if col not in rec:
            continue
        try:
            rec[col] = _parse_number(rec[col], kind)
        except ValueError:
            return f"{col} {rec[col]!r} is not a {'whole ' if kind is int else ''}number"
    return None


# -- Generic CSV / Parquet --------------------------------------------------------------------


def read_generic(path: Path, cfg: GenericSource) -> Parsed:
    """Any CSV or Parquet file, mapped to product columns by the config."""
    fmt = cfg.format if cfg.format != "auto" else ("parquet" if path.suffix.lower() in {".parquet", ".pq"} else "csv")
    out = Parsed(source=f"generic:{path}", numeric={c: float for c in cfg.numeric_columns})
    mapping = dict(cfg.columns)
    needed = [cfg.id_column] + [c for c in (cfg.title_column, cfg.image_column) if c]
    image_dir = cfg.image_dir or path.parent
    if fmt == "parquet":
        table = pq.read_table(path)
        header = table.column_names
        rows = ((i + 2, json.dumps(r, default=str), [r.get(c) for c in header]) for i, r in enumerate(table.to_pylist()))
    else:
        lines, buf = _lines_with_raw(path)
        reader = csv.reader(lines)
        header = [h.strip() for h in (next(reader, None) or [])]
        buf.clear()

        def csv_rows() -> Iterator[tuple[int, str, list]]:
            for fields in reader:
                raw = "".join(buf).rstrip("\r\n")
                buf.clear()
                yield reader.line_num - raw.count("\n"), raw, fields

        rows = csv_rows()
    missing = [c for c in needed + list(mapping) if c not in header]
    if missing:
        raise SourceError(f"{path}: columns {missing} named in ingest.generic are not in the file ({header})")
    for line, raw, fields in rows:
        if fmt == "csv" and not raw.strip():
            continue
        if len(fields) != len(header):
            out.rejects.append((line, raw, f"expected {len(header)} fields, got {len(fields)}"))
            continue
        row = dict(zip(header, fields))
        pid = clean(row[cfg.id_column])
        if pid is None:
            out.rejects.append((line, raw, f"empty {cfg.id_column}"))
            continue
        rec: dict = {"product_id": pid, "title": clean(row[cfg.title_column]) if cfg.title_column else None}
        rec.update({dst: clean(row[src]) for src, dst in mapping.items()})
        bad = _parse_numbers(rec, out.numeric)
        if bad:
            out.rejects.append((line, raw, bad))
            continue
        image = clean(row[cfg.image_column]) if cfg.image_column else None
        if image is None and cfg.image_pattern:
            image = cfg.image_pattern.format(id=pid)
        if image is not None and "://" not in image and not Path(image).is_absolute():
            image = str(image_dir / image)
        rec["image_path"] = image
        out.records.append(rec)
        out.lines.append(line)
        out.raws.append(raw)
    return out


def detect_preset(path: Path) -> str:
    """Recognise the two shared catalogs from their files; anything else is generic."""
    if path.is_dir():
        if (path / "styles.csv").is_file():
            return "fashion-product-images"
        if (path / "products.csv").is_file():
            return "myntra"
        raise SourceError(f"{path}: no styles.csv (Fashion Product Images) or products.csv (Myntra) in this folder")
    if path.is_file():
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        if first.startswith("id,gender,masterCategory"):
            return "fashion-product-images"
        if first.startswith("ProductID,ProductName"):
            return "myntra"
        return "generic"
    raise SourceError(f"{path}: no such file or folder")


def read_source(path: Path, preset: str, generic: GenericSource | None) -> Parsed:
    path = Path(path).expanduser().resolve()
    if preset == "auto":
        preset = detect_preset(path)
    if preset == "fashion-product-images":
        return read_fashion(path if path.is_dir() else path.parent)
    if preset == "myntra":
        return read_myntra(path / "products.csv" if path.is_dir() else path)
    if generic is None:
        raise SourceError(
            f"{path}: not a known catalog layout; describe its columns under ingest.generic in the config "
            "(id_column, title_column, image_column, columns)"
        )
    return read_generic(path, generic)
