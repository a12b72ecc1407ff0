"""Where the CLI writes: results to stdout (pipe them), progress and errors to stderr."""
from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from warehouse.errors import VitrineError

console = Console(stderr=True)
out = Console()
FORMATS = ("table", "csv", "json")


def _cell(v) -> str:
    """A table cell: floats to four significant digits (csv and json keep every digit)."""
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_rows(cols: Sequence[str], rows: Sequence[tuple], format: str = "table") -> None:
    """Rows as a rich table, CSV or JSON: the `--format` every listing command shares."""
    if format not in FORMATS:
        raise VitrineError(f"unknown format {format!r}: use table, csv or json")
    if format == "csv":
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(cols)
        w.writerows(rows)
    elif format == "json":
        sys.stdout.write(json.dumps([dict(zip(cols, r)) for r in rows], default=str, indent=1) + "\n")
    else:
        t = Table(*cols)
        for r in rows:
            t.add_row(*(_cell(v) for v in r))
        out.print(t)
        out.print(f"{len(rows)} rows")
