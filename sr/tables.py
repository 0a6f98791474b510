"""Result tables as Markdown, and the command line that produced them (bench, evaluate)."""
from __future__ import annotations

import shlex
import sys


def columns(rows: list[dict]) -> list[str]:
    """Every key of every row, in order of first appearance."""
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    return cols


def markdown_table(rows: list[dict]) -> list[str]:
    """Rows of dicts -> Markdown table lines (missing / None cells left empty)."""
    if not rows:
        return []
    cols = columns(rows)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |" for r in rows]
    return out


def command_line() -> str:
    """This process's ``python -m sr ...`` command, quoted so it can be pasted and rerun."""
    return "python -m sr " + " ".join(shlex.quote(a) for a in sys.argv[1:])
