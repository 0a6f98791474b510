"""MOS statistics and report on synthetic vote tables with known answers."""
import csv
import math

import numpy as np
import pytest

from sr.mos.stats import TEST_NAME, analyze, bootstrap_ci, compare, holm, method_order, screen
from sr.mos.store import Vote, VoteStore, read_votes


def V(rater, image, method, score):
    return Vote("2026-01-01T00:00:00.000Z", rater, f"{rater}-{image}-{method}", image, method, score, 2.0, "t")


def synthetic():
    """10 good raters x 5 images; 2 raters who invert the anchors; 1 rater with bicubic only.

    Known answers after screening: nearest 1.5, bicubic 3.0, srgan = srgan-improved = 4.1,
    reference 5.0; srgan-bicubic per-rater differences are 0.2, 0.4, ..., 2.0 (all distinct,
    all positive) so the exact two-sided Wilcoxon p-value is 2 / 2**10.
    """
    votes = []
    images = [f"img{i}" for i in range(5)]
    for k in range(10):
        r = f"good{k}"
        plus = [0] * 5
        for j in range(k + 1):  # k+1 extra points spread over the 5 images: mean 3 + (k+1)/5
            plus[j % 5] += 1
        for i, im in enumerate(images):
            votes.append(V(r, im, "nearest", 1 + (i + k) % 2 if i < 4 else 1 + k % 2))
            votes.append(V(r, im, "bicubic", 3))
            votes.append(V(r, im, "srgan", 3 + plus[i]))
            votes.append(V(r, im, "srgan-improved", 3 + plus[i]))
            votes.append(V(r, im, "reference", 5))
    for k in range(2):
        for im in images:
            votes.append(V(f"bad{k}", im, "nearest", 5))
            votes.append(V(f"bad{k}", im, "reference", 1))
            votes.append(V(f"bad{k}", im, "srgan", 1))
    votes.append(V("partial", "img0", "bicubic", 3))
    return votes


def test_screening_drops_inverted_raters():
    kept, s = screen(synthetic())
    assert s.raters_total == 13 and sorted(s.dropped) == ["bad0", "bad1"] and s.unscreenable == 1 and s.kept == 11
    assert all(not v.rater_id.startswith("bad") for v in kept)
    kept2, s2 = screen(synthetic(), apply=False)
    assert len(kept2) == len(synthetic()) and s2.kept == 13 and len(s2.dropped) == 2


def test_known_mos_counts_and_order():
    a = analyze(synthetic(), n_boot=300, seed=1)
    assert [m.method for m in a.methods] == ["nearest", "bicubic", "srgan", "srgan-improved", "reference"]
    mos = {m.method: m.mos for m in a.methods}
    nearest_mean = np.mean([1 + (i + k) % 2 if i < 4 else 1 + k % 2 for k in range(10) for i in range(5)])
    assert mos == pytest.approx({"nearest": nearest_mean, "bicubic": 3.0, "srgan": 4.1,
                                 "srgan-improved": 4.1, "reference": 5.0})
    bic = a.method("bicubic")
    assert (bic.votes, bic.raters, bic.images, bic.counts) == (51, 11, 5, [0, 0, 51, 0, 0])
    assert (bic.ci_low, bic.ci_high) == (3.0, 3.0)  # no variation, no width
    ref = a.method("reference")
    assert ref.counts == [0, 0, 0, 0, 50] and (a.raters, a.votes) == (11, 251)
    s = a.method("srgan")
    assert s.ci_low < 4.1 < s.ci_high and s.ci_high - s.ci_low < 1.5


def test_known_wilcoxon_and_holm():
    a = analyze(synthetic(), n_boot=200)
    got = {(c.a, c.b): c for c in a.comparisons}
    assert set(got) == {("srgan", "bicubic"), ("srgan-improved", "bicubic"), ("srgan", "srgan-improved")}
    c = got[("srgan", "bicubic")]
    assert c.test == TEST_NAME and "Wilcoxon signed-rank" in c.test
    assert c.pairs == 10 and c.mean_diff == pytest.approx(1.1) and c.p == pytest.approx(2 / 2 ** 10)
    same = got[("srgan", "srgan-improved")]
    assert same.p == 1.0 and same.mean_diff == 0
    assert c.p_holm == pytest.approx(3 * 2 / 1024) and same.p_holm == 1.0
    assert holm([0.01, 0.04, float("nan"), 0.03]) == pytest.approx([0.03, 0.06, float("nan"), 0.06], nan_ok=True)
    assert math.isnan(compare(synthetic(), "srgan", "nope").p)


def test_two_level_bootstrap_matches_crossed_variance():
    """scores = a_rater + b_image: the bootstrap SD is sqrt(var(a)/R + var(b)/I) (population vars)."""
    rng = np.random.default_rng(3)
    R, I = 30, 24
    a, b = rng.normal(0, 0.6, R), rng.normal(0, 0.9, I)
    rr, ii = np.meshgrid(np.arange(R), np.arange(I), indexing="ij")
    scores = 3 + a[rr.ravel()] + b[ii.ravel()]
    lo, hi = bootstrap_ci(scores, rr.ravel(), ii.ravel(), n_boot=4000, rng=0)
    sd = math.sqrt(a.var() / R + b.var() / I)
    assert lo < scores.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(1.96 * sd, rel=0.12)
    lo_r, hi_r = bootstrap_ci(scores, rr.ravel(), np.zeros(R * I), n_boot=4000, rng=0)  # raters only
    assert (hi_r - lo_r) / 2 == pytest.approx(1.96 * a.std() / math.sqrt(R), rel=0.12)
    assert hi_r - lo_r < 0.75 * (hi - lo)  # ignoring the images would understate the uncertainty


def test_method_order_puts_anchors_at_the_ends():
    assert method_order({"reference", "zzz", "bicubic", "nearest", "srgan"}) == \
        ["nearest", "bicubic", "srgan", "zzz", "reference"]


def test_report_cli_end_to_end(tmp_path, capsys):
    from sr.cli import main

    path = tmp_path / "votes.csv"
    st = VoteStore(path)
    for v in synthetic():
        st.append({"timestamp_utc": v.timestamp, "rater_id": v.rater_id, "item_id": v.item_id,
                   "image_id": v.image_id, "method": v.method, "score": v.score, "seconds": v.seconds,
                   "app_version": v.app_version})
    with open(path, "ab") as f:
        f.write(b"2026-01-01T00:00:00.000Z,good1,x")  # interrupted write
    out = tmp_path / "rep"
    rc = main(["mos", "report", str(path), "--out", str(out), "--boot", "200", "--json", str(out / "a.json")])
    cap = capsys.readouterr()
    assert rc == 0
    assert "damaged trailing line" in cap.err
    assert "| srgan | 50 | 10 | 5 | 4.10 |" in cap.out and "Dropped 2 of 13 raters" in cap.out
    assert "Wilcoxon signed-rank" in cap.out and "Holm" in cap.out
    rows = list(csv.DictReader(open(out / "mos_summary.csv")))
    assert [r["method"] for r in rows] == ["nearest", "bicubic", "srgan", "srgan-improved", "reference"]
    assert float(rows[1]["mos"]) == 3.0 and rows[4]["n5_excellent"] == "50"
    from PIL import Image

    with Image.open(out / "mos_heatmap.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert (out / "mos_summary.md").read_text().startswith("## MOS results")
    import json

    j = json.loads((out / "a.json").read_text())
    assert j["screening"]["dropped_count"] == 2 and len(j["comparisons"]) == 3
    rc = main(["mos", "report", str(path), "--out", str(out), "--boot", "200", "--no-screen"])
    assert rc == 0 and "NOT applied" in capsys.readouterr().out
    assert main(["mos", "report", str(tmp_path / "missing.csv")]) == 2
    assert read_votes(path).problems  # the reader itself never raised


def test_screening_by_hidden_repeat_and_report_says_why():
    """P.808-style consistency check: a repeat scored > 1 apart drops the rater; repeats never count in the MOS."""
    from dataclasses import replace

    from sr.mos.report import to_markdown

    votes = synthetic()
    first = next(v for v in votes if v.rater_id == "good3" and v.method == "bicubic")
    steady = next(v for v in votes if v.rater_id == "good4" and v.method == "bicubic")
    votes += [replace(first, score=5, role="repeat"),  # 3 then 5: inconsistent
              replace(steady, score=4, role="repeat")]  # 3 then 4: within tolerance
    kept, s = screen(votes)
    assert s.reasons == {"bad0": "anchors", "bad1": "anchors", "good3": "repeat"}
    assert s.count("anchors") == 2 and s.count("repeat") == 1 and s.repeat_checked == 2
    a = analyze(votes, n_boot=200)
    assert a.method("bicubic").votes == 9 * 5 + 1  # good3 dropped, good4's repeat not counted (+1: partial)
    md = to_markdown(a)
    assert "Dropped 3 of 13 raters (2 for (a), 1 for (b))" in md and "P.808" in md
