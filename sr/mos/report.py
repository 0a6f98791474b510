"""MOS report: summary table (markdown / CSV / JSON) and the rating heatmap (PNG)."""
from __future__ import annotations

import csv
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .pool import SCORE_NAMES
from .stats import Analysis
from .store import ReadResult, escape_cell

SUMMARY_COLUMNS = ("method", "votes", "raters", "images", "mos", "ci95_low", "ci95_high", "std",
                   "n1_bad", "n2_poor", "n3_fair", "n4_good", "n5_excellent")


def _f(x: float, nd: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _p(x: float) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_rows(a: Analysis) -> list[dict]:
    rows = []
    for m in a.methods:
        rows.append(dict(zip(SUMMARY_COLUMNS, [m.method, m.votes, m.raters, m.images, round(m.mos, 4),
                                               round(m.ci_low, 4), round(m.ci_high, 4), round(m.std, 4),
                                               *m.counts])))
    return rows


def to_markdown(a: Analysis, read: ReadResult | None = None, title: str = "MOS results",
                note: str | None = None) -> str:
    s = a.screening
    lines = [f"## {title}", ""]
    lines.append(f"{_n(a.votes, 'vote')} from {_n(a.raters, 'rater')} on {_n(a.images, 'image')}"
                 + (f" ({_n(len(read.files), 'file')})" if read is not None else "") + ".")
    if note:
        lines += ["", note]
    why = (f" ({s.count('anchors')} for (a), {s.count('repeat')} for (b))" if s.dropped else "")
    lines += ["", f"**Rater screening** ({'applied' if s.applied else 'NOT applied'}): {s.rule}. "
              + (f"Dropped {len(s.dropped)} of {s.raters_total} raters"
                 if s.applied else f"{len(s.dropped)} of {s.raters_total} raters would be dropped")
              + why + f"; {_n(s.repeat_checked, 'rater')} had a repeated image; "
              + f"{_n(s.unscreenable, 'rater')} with neither check kept.", ""]
    if not a.methods:
        lines.append("No votes yet.")
    else:
        pct = int(round(a.level * 100))
        lines.append(f"| method | votes | raters | images | MOS | {pct}% CI | 1 | 2 | 3 | 4 | 5 |")
        lines.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for m in a.methods:
            lines.append(f"| {m.method} | {m.votes} | {m.raters} | {m.images} | {_f(m.mos)} | "
                         f"[{_f(m.ci_low)}, {_f(m.ci_high)}] | " + " | ".join(str(c) for c in m.counts) + " |")
        lines += ["", f"MOS: mean of the 1-5 scores (1 Bad, 2 Poor, 3 Fair, 4 Good, 5 Excellent). "
                  f"CI: percentile interval of {a.n_boot} two-level bootstrap replicates "
                  f"(raters and images resampled with replacement)."]
    if a.comparisons:
        lines += ["", f"**Pairwise tests**: {a.comparisons[0].test}; Holm-adjusted over the "
                  f"{len(a.comparisons)} comparisons.", "",
                  "| A | B | raters | mean A-B | statistic | p | p (Holm) |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for c in a.comparisons:
            lines.append(f"| {c.a} | {c.b} | {c.pairs} | {_f(c.mean_diff)} | {_f(c.statistic, 1)} | "
                         f"{_p(c.p)} | {_p(c.p_holm)} |")
    elif a.methods:
        lines += ["", "No learned models among the rated methods: no pairwise tests."]
    if read is not None and (read.problems or read.duplicates):
        lines += ["", f"**Input**: {len(read.problems)} damaged/invalid line(s) skipped"
                  + (f", {read.duplicates} duplicate vote(s) (same rater and item) counted once" if read.duplicates else "")
                  + "."]
        lines += [f"- {p}" for p in read.problems[:20]]
        if len(read.problems) > 20:
            lines.append(f"- ... and {len(read.problems) - 20} more")
    return "\n".join(lines) + "\n"


def write_csv(a: Analysis, path: str | Path) -> Path:
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(SUMMARY_COLUMNS)
        for row in summary_rows(a):
            w.writerow([escape_cell(row[c]) for c in SUMMARY_COLUMNS])
    return path


def to_json(a: Analysis, read: ReadResult | None = None) -> dict:
    d = asdict(a)
    d["screening"]["dropped_count"] = len(a.screening.dropped)
    d["screening"]["dropped_by"] = {"anchors": a.screening.count("anchors"), "repeat": a.screening.count("repeat")}
    if read is not None:
        d["input"] = {"files": [str(p) for p in read.files], "problems": read.problems,
                      "duplicates": read.duplicates}
    return _no_nan(d)


def _no_nan(x):
    if isinstance(x, float):
        return None if math.isnan(x) else x
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_no_nan(v) for v in x]
    return x


def heatmap(a: Analysis, path: str | Path, title: str = "Rating distribution") -> Path:
    """methods x scores: colour = share of the method's votes, text = count, diamond = MOS."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    names = [m.method for m in a.methods] or ["(no votes)"]
    counts = np.array([m.counts for m in a.methods], dtype=float).reshape(len(a.methods), 5)
    if counts.size == 0:
        counts = np.zeros((1, 5))
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(6.4, 1.0 + 0.48 * len(names)), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="viridis", vmin=0, vmax=max(0.5, float(share.max())), aspect="auto")
    for i in range(share.shape[0]):
        for j in range(5):
            ax.text(j, i - 0.2, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] < 0.6 * max(0.5, float(share.max())) else "black")
    for i, m in enumerate(a.methods):
        x = m.mos - 1
        ax.plot([x], [i + 0.2], marker="D", markersize=6, markerfacecolor="red", markeredgecolor="white")
        ax.errorbar([x], [i + 0.2], xerr=[[max(0, m.mos - m.ci_low)], [max(0, m.ci_high - m.mos)]],
                    fmt="none", ecolor="red", elinewidth=1.2, capsize=3)
    ax.set_xticks(range(5), [f"{k}\n{SCORE_NAMES[k]}" for k in range(1, 6)], fontsize=8)
    ax.set_yticks(range(len(names)), [f"{n}  (MOS {m.mos:.2f})" for n, m in zip(names, a.methods)]
                  if a.methods else names, fontsize=8)
    ax.set_xlabel("score (counts in cells; red diamond: MOS with 95% CI)", fontsize=8)
    ax.set_title(title, fontsize=10)
    cb = fig.colorbar(im, ax=ax, fraction=0.04)
    cb.set_label("share of the method's votes", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    fig.savefig(path, format="png")
    return path


def write_report(a: Analysis, out_dir: str | Path, read: ReadResult | None = None,
                 stem: str = "mos", note: str | None = None) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{stem}_summary.md"
    md.write_text(to_markdown(a, read, note=note), encoding="utf-8")
    return {"markdown": md, "csv": write_csv(a, out / f"{stem}_summary.csv"),
            "png": heatmap(a, out / f"{stem}_heatmap.png")}
