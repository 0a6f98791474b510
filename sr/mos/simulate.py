"""Simulated raters through the real storage and statistics code (``python -m sr mos simulate``).

A rater scores an item ``round(true MOS of the method + image offset + rater bias + noise)``,
clipped to 1..5; a share of raters are spammers who score at random. Each rater sees
``items`` items per session balanced over the methods (as :meth:`sr.mos.pool.Pool.plan`
does) plus one hidden repeat of an earlier item.

* :func:`study_check`: one study of ``raters`` raters with a known effect is written through
  :class:`sr.mos.store.VoteStore` (the same locked appends as the app), read back with
  :func:`sr.mos.store.read_votes` and analysed by :func:`sr.mos.stats.analyze` (screening
  included): is the true MOS inside each CI, is the known effect found, are spammers dropped?
* :func:`false_positive_rate`: many studies in which two methods have the SAME true MOS; the
  share with p < 0.05 (Wilcoxon on per-rater means, :func:`sr.mos.stats.compare`) should be
  about 5%.
* :func:`power_curve`: for several numbers of raters, the share of studies in which a true
  difference of ``delta`` MOS between two methods gives p < 0.05; the smallest number with
  at least 80% power is reported.

The repeated studies skip the CSV (thousands of fsyncs) but use the same :class:`Vote` rows
and statistics code.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .pool import LOW_ANCHOR, REFERENCE
from .stats import analyze, compare, screen
from .store import Vote, VoteStore, read_votes

TRUE_MOS = {LOW_ANCHOR: 1.6, "bicubic": 2.6, "model-a": 3.4, "model-b": 3.7, REFERENCE: 4.6}


@dataclass
class Noise:
    rater_bias: float = 0.35  # sd of a rater's offset
    image_sd: float = 0.3  # sd of an image's offset (shared by all methods of that image)
    noise: float = 0.7  # sd of one judgement
    spammers: float = 0.1  # share of raters scoring uniformly at random


@dataclass
class SimResult:
    check: dict = field(default_factory=dict)
    false_positive: dict = field(default_factory=dict)
    power: dict = field(default_factory=dict)
    seconds: float = 0.0


def simulate_votes(rng: np.random.Generator, true_mos: dict[str, float], raters: int, items: int = 20,
                   images: int = 30, noise: Noise | None = None, repeat: bool = True,
                   study_id: str = "sim") -> tuple[list[Vote], set[str]]:
    """Votes of ``raters`` simulated raters; also the ids of the spammers."""
    noise = noise or Noise()
    methods = list(true_mos)
    img_off = rng.normal(0, noise.image_sd, images)
    votes, spam = [], set()
    for r in range(raters):
        rid = f"sim{r:04d}"
        is_spam = rng.random() < noise.spammers
        if is_spam:
            spam.add(rid)
        bias = rng.normal(0, noise.rater_bias)
        per = [methods[k % len(methods)] for k in range(items)]  # balanced over methods
        imgs = rng.choice(images, size=items, replace=items > images)
        shown = list(zip(per, imgs))
        rng.shuffle(shown)
        if repeat and len(shown) >= 4:
            shown.append(shown[int(rng.integers(0, len(shown) - 3))])
        seen = set()
        for m, i in shown:
            key = f"{m}:{i}"
            role = "repeat" if key in seen else "rated"
            seen.add(key)
            if is_spam:
                score = int(rng.integers(1, 6))
            else:
                score = int(np.clip(np.rint(true_mos[m] + img_off[i] + bias + rng.normal(0, noise.noise)), 1, 5))
            votes.append(Vote("2026-01-01T00:00:00.000Z", rid, f"it-{key}", f"img{i:03d}", m, score, 3.0,
                              "sim", study_id, role))
    return votes, spam


def study_check(rng, raters: int = 40, items: int = 20, noise: Noise | None = None, n_boot: int = 500) -> dict:
    """One study through the real CSV store, reader and analysis; what was recovered."""
    votes, spam = simulate_votes(rng, TRUE_MOS, raters, items, noise=noise)
    with tempfile.TemporaryDirectory(prefix="sr_mos_sim_") as tmp:
        path = Path(tmp) / "votes.csv"
        store = VoteStore(path)
        for v in votes:
            store.append({"timestamp_utc": v.timestamp, "rater_id": v.rater_id, "item_id": v.item_id,
                          "image_id": v.image_id, "method": v.method, "score": v.score, "seconds": v.seconds,
                          "app_version": v.app_version, "study_id": v.study_id, "role": v.role})
        read = read_votes(path)
    a = analyze(read.votes, n_boot=n_boot, seed=int(rng.integers(1 << 31)))
    comp = {(c.a, c.b): c for c in a.comparisons}
    eff = comp.get(("model-a", "bicubic"))
    dropped = set(a.screening.dropped)
    return {"votes_written": len(votes), "votes_read": len(read.votes), "problems": len(read.problems),
            "raters": raters, "spammers": len(spam), "spammers_dropped": len(spam & dropped),
            "honest_dropped": len(dropped - spam),
            "mos": {m.method: round(m.mos, 3) for m in a.methods},
            "ci": {m.method: (round(m.ci_low, 3), round(m.ci_high, 3)) for m in a.methods},
            "true_mos_in_ci": {m.method: bool(m.ci_low <= TRUE_MOS[m.method] <= m.ci_high) for m in a.methods},
            "effect": {"a": "model-a", "b": "bicubic", "true_diff": TRUE_MOS["model-a"] - TRUE_MOS["bicubic"],
                       "mean_diff": round(eff.mean_diff, 3), "p": eff.p, "found": bool(eff.p < 0.05)}}


def _p_two(rng, mos_a: float, mos_b: float, raters: int, items: int, noise: Noise) -> float:
    true = {LOW_ANCHOR: 1.6, "bicubic": 2.6, "a": mos_a, "b": mos_b, "c": 3.4, REFERENCE: 4.6}  # 6 methods
    votes, _ = simulate_votes(rng, true, raters, items, noise=noise)
    kept, _ = screen(votes)
    return compare(kept, "a", "b").p


def false_positive_rate(rng, reps: int = 400, raters: int = 30, items: int = 20, noise: Noise | None = None) -> dict:
    noise = noise or Noise()
    ps = np.array([_p_two(rng, 3.0, 3.0, raters, items, noise) for _ in range(reps)])
    rate = float(np.mean(ps < 0.05))
    se = float(np.sqrt(0.05 * 0.95 / reps))
    return {"reps": reps, "raters": raters, "rate": round(rate, 4), "expected": 0.05,
            "within_3se": bool(abs(rate - 0.05) <= 3 * se + 1e-9), "se": round(se, 4)}


def power_curve(rng, delta: float = 0.3, raters_list=(10, 20, 30, 40, 60, 80, 120), reps: int = 200,
                items: int = 20, target: float = 0.8, noise: Noise | None = None) -> dict:
    noise = noise or Noise()
    curve = {}
    for n in raters_list:
        ps = np.array([_p_two(rng, 3.0 + delta, 3.0, n, items, noise) for _ in range(reps)])
        curve[int(n)] = round(float(np.mean(ps < 0.05)), 3)
    enough = [n for n in curve if curve[n] >= target]
    return {"delta": delta, "reps": reps, "items_per_session": items, "power": curve, "target": target,
            "raters_needed": min(enough) if enough else None}


def run(quick: bool = False, seed: int = 0, delta: float = 0.3, items: int = 20) -> SimResult:
    t0 = time.time()
    rng = np.random.default_rng(seed)
    res = SimResult()
    res.check = study_check(rng, raters=24 if quick else 40, items=items, n_boot=200 if quick else 500)
    res.false_positive = false_positive_rate(rng, reps=150 if quick else 1000, items=items)
    res.power = power_curve(rng, delta, (10, 30, 60) if quick else (10, 20, 30, 40, 50, 60, 80, 100, 120),
                            reps=60 if quick else 300, items=items)
    res.seconds = round(time.time() - t0, 2)
    return res


def to_text(r: SimResult) -> str:
    c, f, p = r.check, r.false_positive, r.power
    e = c["effect"]
    lines = [
        "## Simulated MOS study (real vote store, reader and statistics)", "",
        f"One study, {c['raters']} raters ({c['spammers']} spammers): {c['votes_written']} votes written, "
        f"{c['votes_read']} read back, {c['problems']} damaged lines.",
        f"Screening dropped {c['spammers_dropped']} of {c['spammers']} spammers and {c['honest_dropped']} honest raters.",
        "",
        "| method | true MOS | MOS | 95% CI | true in CI |", "|---|---:|---:|---|---|"]
    for m, mos in c["mos"].items():
        lo, hi = c["ci"][m]
        lines.append(f"| {m} | {TRUE_MOS[m]:.2f} | {mos:.2f} | [{lo:.2f}, {hi:.2f}] | {c['true_mos_in_ci'][m]} |")
    lines += ["", f"(a) Known effect {e['a']} - {e['b']} = {e['true_diff']:.2f}: estimated {e['mean_diff']:.2f}, "
              f"p = {e['p']:.2g} ({'found' if e['found'] else 'NOT found'}).",
              f"    False-positive rate (two methods with equal true MOS, {f['raters']} raters, {f['reps']} studies): "
              f"{100 * f['rate']:.1f}% (expected 5%, {'within' if f['within_3se'] else 'OUTSIDE'} 3 SE = "
              f"{300 * f['se']:.1f} points).",
              f"(b) Power to detect a {p['delta']} MOS difference (p < 0.05, {p['reps']} studies each, "
              f"{p['items_per_session']} items per session): "
              + ", ".join(f"{n} raters {100 * v:.0f}%" for n, v in p["power"].items()) + ".",
              f"    Raters needed for {100 * p['target']:.0f}% power: "
              + (str(p["raters_needed"]) if p["raters_needed"] else f"more than {max(p['power'])}") + ".",
              "", f"{r.seconds:.1f} s."]
    return "\n".join(lines) + "\n"
