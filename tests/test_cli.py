import json
import os
import subprocess
import sys

import numpy as np
import tifffile

from conftest import REPO, blobs


def _run(args, env_extra=None, **kw):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "sr", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def test_zoo_json_lists_registry():
    r = _run(["zoo", "--json"])
    assert r.returncode == 0, r.stderr
    models = json.loads(r.stdout)
    ids = {m["id"] for m in models}
    assert {"nearest", "bicubic", "srgan", "srgan-improved", "msrgan"} <= ids
    for m in models:
        assert {"id", "title", "description", "kind", "repo_id", "revision", "sha256", "available"} <= set(m)


def test_upscale_16bit_tiff_512(tiny_zoo, tmp_path):
    reg, weights = tiny_zoo
    src = tmp_path / "cells.tif"
    tifffile.imwrite(src, blobs(512, 512, dtype=np.uint16))
    r = _run(["upscale", str(src), "--model", "srgan-improved", "--out", str(tmp_path / "out")],
             {"SR_REGISTRY": str(reg), "SR_WEIGHTS_DIR": str(weights)})
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out" / "cells_x4_srgan-improved.tif"
    assert str(out) in r.stdout
    a = tifffile.imread(out)
    assert a.shape == (2048, 2048) and a.dtype == np.uint16


def test_upscale_bad_input_one_line_error(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"garbage")
    r = _run(["upscale", str(bad), "--model", "bicubic", "--out", str(tmp_path)])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")


def test_unknown_model_error(tmp_path):
    r = _run(["upscale", "whatever.png", "--model", "no-such-model"])
    assert r.returncode == 2 and "unknown model" in r.stderr and "Traceback" not in r.stderr
