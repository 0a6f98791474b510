"""MOS statistics: screening, MOS with a two-level bootstrap CI, pairwise tests.

* **Screening** (applied before everything else), after ITU-T P.808: a rater is dropped when
  (a) their mean score for the hidden reference is below their mean score for the
  nearest-neighbour result (hidden anchors), or (b) they scored the session's hidden repeated
  image more than :data:`REPEAT_TOLERANCE` point apart the two times (consistency check).
  Raters with neither check available are kept; their number is reported, and so is the number
  dropped by each rule. The repeated showings themselves never count in the MOS.
* **MOS and 95% CI**: the mean of all votes for a method; the CI is the percentile interval of
  a two-level (crossed) bootstrap that resamples raters and images with replacement,
  independently: a replicate weights vote (r, i) by (times r drawn) x (times i drawn).
  Replicates in which no drawn rater rated a drawn image are discarded.
* **Pairwise tests**: Wilcoxon signed-rank test (two-sided, scipy, zero differences dropped)
  on per-rater mean scores of the two methods, over the raters who rated both; each learned
  model vs bicubic and the learned models against each other; p-values also Holm-adjusted
  over that family.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from .pool import LOW_ANCHOR, REFERENCE
from .store import Vote

BASELINE = "bicubic"
NON_LEARNED = (LOW_ANCHOR, BASELINE, REFERENCE)
TEST_NAME = "Wilcoxon signed-rank (two-sided) on per-rater mean scores"
REPEAT_TOLERANCE = 1
ANCHOR_RULE = (f"mean score for the hidden reference below the mean score for the {LOW_ANCHOR}-neighbour "
               f"result")
REPEAT_RULE = f"the hidden repeated image scored more than {REPEAT_TOLERANCE} point apart"
SCREEN_RULE = f"raters are dropped for (a) {ANCHOR_RULE} or (b) {REPEAT_RULE} (ITU-T P.808 style)"


@dataclass
class Screening:
    rule: str
    applied: bool
    raters_total: int
    dropped: list[str] = field(default_factory=list)  # flagged by the rule (removed if applied)
    unscreenable: int = 0  # raters without votes on both anchors (kept)
    reasons: dict[str, str] = field(default_factory=dict)  # dropped rater -> "anchors" | "repeat" | both
    repeat_checked: int = 0  # raters with a repeated item

    def count(self, reason: str) -> int:
        return sum(reason in r.split("+") for r in self.reasons.values())

    @property
    def kept(self) -> int:
        return self.raters_total - (len(self.dropped) if self.applied else 0)


@dataclass
class MethodSummary:
    method: str
    votes: int
    raters: int
    images: int
    mos: float
    ci_low: float
    ci_high: float
    counts: list[int]  # votes with score 1..5
    std: float


@dataclass
class Comparison:
    a: str
    b: str
    test: str
    pairs: int
    mean_diff: float  # mean over paired raters of (mean a - mean b)
    statistic: float
    p: float
    p_holm: float = float("nan")


@dataclass
class Analysis:
    methods: list[MethodSummary]
    screening: Screening
    comparisons: list[Comparison]
    votes: int
    raters: int
    images: int
    n_boot: int
    level: float

    def method(self, name: str) -> MethodSummary:
        return next(m for m in self.methods if m.method == name)


def method_order(methods) -> list[str]:
    """nearest, bicubic, the learned models (zoo order, then by name), reference last."""
    methods = set(methods)
    try:
        from ..zoo import entries

        zoo_order = [e.id for e in entries()]
    except Exception:  # registry unreadable: order by name
        zoo_order = []
    head = [m for m in (LOW_ANCHOR, BASELINE) if m in methods]
    learned = [m for m in methods if m not in NON_LEARNED]
    learned.sort(key=lambda m: (zoo_order.index(m) if m in zoo_order else len(zoo_order), m))
    return head + learned + ([REFERENCE] if REFERENCE in methods else [])


def _first_showings(votes: list[Vote]) -> list[Vote]:
    return [v for v in votes if getattr(v, "role", "rated") != "repeat"]


def _rater_method_means(votes: list[Vote]) -> dict[tuple[str, str], float]:
    sums: dict[tuple[str, str], list[float]] = {}
    for v in _first_showings(votes):
        s = sums.setdefault((v.rater_id, v.method), [0.0, 0])
        s[0] += v.score
        s[1] += 1
    return {k: t / n for k, (t, n) in sums.items()}


def screen(votes: list[Vote], apply: bool = True) -> tuple[list[Vote], Screening]:
    raters = sorted({v.rater_id for v in votes})
    means = _rater_method_means(votes)
    first = {(v.rater_id, v.item_id): v.score for v in _first_showings(votes)}
    inconsistent, checked = set(), set()
    for v in votes:
        if getattr(v, "role", "rated") == "repeat" and (v.rater_id, v.item_id) in first:
            checked.add(v.rater_id)
            if abs(v.score - first[(v.rater_id, v.item_id)]) > REPEAT_TOLERANCE:
                inconsistent.add(v.rater_id)
    dropped, unscreenable, reasons = [], 0, {}
    for r in raters:
        hi, lo = means.get((r, REFERENCE)), means.get((r, LOW_ANCHOR))
        why = []
        if hi is not None and lo is not None and hi < lo:
            why.append("anchors")
        if r in inconsistent:
            why.append("repeat")
        if (hi is None or lo is None) and r not in checked:
            unscreenable += 1
        if why:
            dropped.append(r)
            reasons[r] = "+".join(why)
    info = Screening(SCREEN_RULE, apply, len(raters), dropped, unscreenable, reasons, len(checked))
    if not apply:
        return list(votes), info
    bad = set(dropped)
    return [v for v in votes if v.rater_id not in bad], info


def bootstrap_ci(scores, raters, images, n_boot: int = 2000, level: float = 0.95,
                 rng: np.random.Generator | int | None = 0) -> tuple[float, float]:
    """Percentile CI of the mean of ``scores`` from a crossed rater x image bootstrap."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return float("nan"), float("nan")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    _, r_idx = np.unique(np.asarray(raters), return_inverse=True)
    _, i_idx = np.unique(np.asarray(images), return_inverse=True)
    nr, ni = int(r_idx.max()) + 1, int(i_idx.max()) + 1
    est = np.empty(0)
    chunk = max(1, min(n_boot, 4_000_000 // scores.size))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        wr = rng.multinomial(nr, np.full(nr, 1.0 / nr), size=b).astype(np.float64)
        wi = rng.multinomial(ni, np.full(ni, 1.0 / ni), size=b).astype(np.float64)
        w = wr[:, r_idx] * wi[:, i_idx]
        tot = w.sum(axis=1)
        ok = tot > 0
        est = np.concatenate([est, (w[ok] @ scores) / tot[ok]])
        done += b
    if est.size == 0:
        m = float(scores.mean())
        return m, m
    alpha = (1 - level) / 2
    lo, hi = np.quantile(est, [alpha, 1 - alpha])
    return float(lo), float(hi)


def compare(votes: list[Vote], a: str, b: str) -> Comparison:
    """Wilcoxon signed-rank test of per-rater mean scores, method ``a`` vs ``b``."""
    means = _rater_method_means(votes)
    raters = sorted({r for (r, m) in means if m == a} & {r for (r, m) in means if m == b})
    xa = np.array([means[(r, a)] for r in raters])
    xb = np.array([means[(r, b)] for r in raters])
    d = xa - xb
    n = len(raters)
    diff = float(d.mean()) if n else float("nan")
    if n == 0:
        return Comparison(a, b, TEST_NAME, 0, diff, float("nan"), float("nan"))
    if np.all(d == 0):
        return Comparison(a, b, TEST_NAME, n, diff, 0.0, 1.0)
    from scipy.stats import wilcoxon

    res = wilcoxon(xa, xb, alternative="two-sided", zero_method="wilcox")
    return Comparison(a, b, TEST_NAME, n, diff, float(res.statistic), float(res.pvalue))


def holm(pvalues) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = [i for i in np.argsort(p, kind="stable") if not np.isnan(p[i])]
    m = len(idx)
    running = 0.0
    for k, i in enumerate(idx):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()


def comparison_pairs(methods) -> list[tuple[str, str]]:
    learned = [m for m in method_order(methods) if m not in NON_LEARNED]
    pairs = [(m, BASELINE) for m in learned] if BASELINE in methods else []
    return pairs + list(combinations(learned, 2))


def analyze(votes: list[Vote], n_boot: int = 2000, level: float = 0.95, seed: int = 0,
            apply_screening: bool = True) -> Analysis:
    kept, scr = screen(votes, apply_screening)
    kept = _first_showings(kept)
    rng = np.random.default_rng(seed)
    summaries = []
    for m in method_order({v.method for v in kept}):
        vs = [v for v in kept if v.method == m]
        sc = np.array([v.score for v in vs], dtype=np.float64)
        lo, hi = bootstrap_ci(sc, [v.rater_id for v in vs], [v.image_id for v in vs], n_boot, level, rng)
        counts = np.bincount(sc.astype(int), minlength=6)[1:6].tolist()
        summaries.append(MethodSummary(m, len(vs), len({v.rater_id for v in vs}), len({v.image_id for v in vs}),
                                       float(sc.mean()), lo, hi, counts, float(sc.std(ddof=1)) if len(sc) > 1 else 0.0))
    comps = [compare(kept, a, b) for a, b in comparison_pairs({v.method for v in kept})]
    for c, ph in zip(comps, holm([c.p for c in comps])):
        c.p_holm = ph
    return Analysis(summaries, scr, comps, len(kept), len({v.rater_id for v in kept}),
                    len({v.image_id for v in kept}), n_boot, level)
