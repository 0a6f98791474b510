"""`python -m sr bench`: the rows and fields it writes (timings are not asserted)."""
from __future__ import annotations

import json

import numpy as np

from sr import bench, cli


def test_bench_quick_cli_writes_json_and_markdown(tmp_path, capsys):
    js, md = tmp_path / "bench.json", tmp_path / "bench.md"
    rc = cli.main(["bench", "--quick", "--models", "bicubic,srgan-lite", "--repeats", "2",
                   "--json", str(js), "--out", str(md)])
    assert rc == 0
    r = json.loads(js.read_text())
    m = r["machine"]
    for k in ("hardware", "threads", "cpu_bf16", "matmul_bf16_gflops", "matmul_fp32_gflops", "load_avg_1min"):
        assert k in m
    rows = r["rows"]
    bic = [x for x in rows if x["model"] == "bicubic"]
    lite = [x for x in rows if x["model"] == "srgan-lite"]
    assert len(bic) == 1 and bic[0]["input"] == "128x128x1" and bic[0]["output"] == "512x512"
    assert {x["path"] for x in lite} == {"fp32-eager", f"fast-{lite[1]['path'][5:]}"}
    for x in rows:
        for k in ("median_ms", "p10_ms", "p90_ms", "fps", "peak_rss_growth_mb"):
            assert x[k] is not None and x[k] >= 0
        assert x["p10_ms"] <= x["median_ms"] <= x["p90_ms"]
    fast = lite[1]
    assert fast["speedup_vs_fp32"] > 0 and fast["achieved_gflops"] > 0 and fast["gflop_per_frame"] > 1
    assert fast["weights"] in ("trained", "random")
    assert r["tiled"] == [] and r["ablation"] == [] and r["compare"] == []  # --quick, subset of models
    prec = r["precisions"]  # the live model: fp32, bf16 and int8 asked in one run, what ran said
    assert [x["asked"] for x in prec] == ["fp32", "bf16", "int8"] and all(x["median_ms"] > 0 for x in prec)
    assert prec[0]["ran"] == "fp32" and prec[2]["ran"] in ("int8", "bf16", "fp32")
    assert "matmul_int8_gops" in m and r["module_vs_id"][0]["module_over_id"] > 0
    text = md.read_text()
    assert text.startswith("# Benchmark") and "| srgan-lite |" in text and "Matmul 1024^3" in text
    assert "srgan-lite" in capsys.readouterr().out


def test_markdown_sections():
    result = {"machine": {"hardware": "cpu", "platform": "linux", "python": "3.11", "cpu_bf16": True,
                          "matmul_bf16_gflops": 1.0, "matmul_fp32_gflops": 1.0, "threads": 2},
              "rows": [{"model": "a", "median_ms": 1.0}], "tiled": [{"model": "a", "seconds": 1.0}],
              "compare": [{"models": "a,b", "median_ms": 2.0}],
              "ablation": [{"model": "a", "variant": "x", "median_ms": 3.0}]}
    text = bench.to_markdown(result, "python -m sr bench")
    assert "## Tiled path" in text and "## The app's comparison" in text and "## Fast-path ablation" in text


def test_full_run_keeps_every_section(monkeypatch):
    """The sections a full run adds (heavy parts stubbed) leave the latency rows alone."""
    from sr import bench_precision as bp, bench_tiled

    monkeypatch.setattr(bench, "bench_model", lambda e, *a, **k: [{"model": e.id, "path": "x", "median_ms": 1.0}])
    monkeypatch.setattr(bench, "matmul_gflops", lambda *a, **k: 1.0)
    monkeypatch.setattr(bp, "int8_matmul_gops", lambda *a, **k: 1.0)
    monkeypatch.setattr(bp, "bench_precisions", lambda *a, **k: [])
    monkeypatch.setattr(bp, "bench_module_vs_id", lambda *a, **k: [])
    monkeypatch.setattr(bp, "bench_cold_start", lambda *a, **k: [])
    monkeypatch.setattr(bench, "bench_ablation", lambda *a, **k: [])
    monkeypatch.setattr(bp, "bench_video", lambda e, **k: [{"model": e.id, "fps": 1.0}])
    monkeypatch.setattr(bp, "bench_consistency", lambda e, **k: [{"model": e.id, "cost_ms": 1.0}])
    monkeypatch.setattr(bench, "bench_compare", lambda *a, **k: {})
    monkeypatch.setattr(bench, "forward_gflop", lambda *a, **k: 1.0)
    monkeypatch.setattr(bench_tiled, "bench_tiled", lambda e, paths, **k: [{"model": e.id, "path": p.label} for p in paths])
    r = bench.run(["srgan-lite"], repeats=1)
    assert r["rows"] == [{"model": "srgan-lite", "path": "x", "median_ms": 1.0}]
    assert r["video"] == [{"model": "srgan-lite", "fps": 1.0}]  # the live model's frames per second
    assert "## Frames per second" in bench.to_markdown({**r, "command": "x"}, "x")
    assert r["consistency"] == [{"model": "srgan-lite", "cost_ms": 1.0}]
    assert "## Back-projection" in bench.to_markdown({**r, "command": "x"}, "x")
    paths = [t["path"] for t in r["tiled"]]
    assert paths[0].startswith("previous default") and paths[-1].startswith("default: auto")


def test_tiled_paths_run_in_turn_and_ratios_are_per_round():
    """Each round runs every path once; the speed-up is the median of the per-round ratios."""
    from types import SimpleNamespace

    from sr.bench_tiled import TiledPath, bench_tiled

    cost = {"A": [10.0, 30.0, 10.0], "B": [5.0, 10.0, 5.0]}  # the machine slows down in round 2
    order = []

    def runner(model_id, path, side):
        order.append(path.label)
        k = sum(1 for x in order if x == path.label) - 1
        return {"seconds": cost[path.label][k], "peak_rss_growth_mb": 100.0 + k, "precision": path.precision,
                "trunk_factor": 3 if path.staged else None, "output": "512x512", "output_mb": 0.25}

    rows = bench_tiled(SimpleNamespace(id="m"), [("a", 256, False, "A"), TiledPath("b", 64, True, "B")],
                       side=128, rounds=3, runner=runner)
    assert order == ["A", "B"] * 3  # in turn, not one path's rounds in a row
    assert [r["seconds"] for r in rows] == [10.0, 5.0] and [r["rounds"] for r in rows] == [3, 3]
    assert [r["speedup_vs_previous"] for r in rows] == [1.0, 2.0]  # ratios 2, 3, 2
    assert rows[1]["tiling"] == "two-stage" and rows[0]["tiling"] == "one-stage"
    assert rows[1]["trunk_tile"] == 192 and rows[0]["trunk_tile"] is None
    assert rows[0]["peak_rss_growth_mb"] == 102.0  # the largest of its runs


def test_tiled_run_in_a_fresh_process(tiny_zoo):
    """The child process runs the real tiled path (tiny model, small image) with the asked trunk
    factor and reports its time and memory; a failing child raises with its message."""
    import pytest

    from sr.bench_tiled import TiledPath, run_child

    r = run_child("srgan-improved", TiledPath("bf16", 16, True, "x", trunk_factor=2), side=40)
    assert r["output"] == "160x160" and r["trunk_factor"] == 2 and r["seconds"] > 0
    assert r["peak_rss_growth_mb"] >= 0 and r["precision"] in ("bf16", "fp32")
    with pytest.raises(RuntimeError, match="no-such-model"):
        run_child("no-such-model", TiledPath("bf16", 16, False, "x"), side=40)


def test_consistency_cost_is_measured_for_models_with_steps(tmp_path, monkeypatch):
    from conftest import zoo_env
    from sr import bench_precision as bp, zoo
    from sr.testing import ALL_TINY, make_tiny_zoo

    with zoo_env(monkeypatch, *make_tiny_zoo(tmp_path, ids=ALL_TINY)):
        assert bp.bench_consistency(zoo.get_entry("srgan-improved"), side=16, rounds=2) == []  # no steps: nothing
        zoo.update_entry("srgan-improved", card={"lr_consistency": 2})
        (row,) = bp.bench_consistency(zoo.get_entry("srgan-improved"), side=16, rounds=3)
        assert row["steps"] == 2 and row["with_ms"] > 0 and row["without_ms"] > 0

