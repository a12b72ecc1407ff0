"""What every benchmark writes alongside its numbers: the machine, and its own BENCHMARKS.md section."""
from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    return f"{len(os.sched_getaffinity(0))} cores ({cpu}){mem}, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def command_line(script: str, argv: Sequence[str] | None = None, prefix: str = "") -> str:
    """How to run this benchmark again: `python benchmarks/<script>` and its arguments, shell-quoted
    (a `--section` heading has spaces), after `prefix` (environment variables)."""
    args = list(argv) if argv is not None else sys.argv[1:]
    return f"{prefix}python benchmarks/{Path(script).name} {shlex.join(args)}".rstrip()


def stamp(command: str) -> str:
    """The lines every section starts with: machine, date, the command that made it."""
    load = os.getloadavg()[0]
    return f"Machine: {machine()}. Date: {date.today().isoformat()}. Load average at start: {load:.1f}.\n\nCommand: `{command}`\n"


def write_section(heading: str, body: str, path: Path = BENCHMARKS) -> None:
    """Replace only the `## heading` section of BENCHMARKS.md; the others belong to other benchmarks."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"## {heading}\n\n{body.strip()}\n"
    pat = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pat.sub(lambda _: section + "\n", text) if pat.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def table(header: Sequence[str], rows: Iterable[Sequence], fmt: Sequence[str] | None = None) -> list[str]:
    """A markdown table's lines; `fmt` holds one format per column (default `{}`), so a benchmark
    states once how many decimals its figures carry."""
    fmt = list(fmt) if fmt is not None else ["{}"] * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f.format(v) for f, v in zip(fmt, row)) + " |" for row in rows]
    return lines


def publish(lines: list[str], heading: str, write: bool) -> str:
    """The section's markdown: printed, and written into BENCHMARKS.md when asked."""
    md = "\n".join(lines) + "\n"
    print(md)
    if write:
        write_section(heading, md)
    return md
