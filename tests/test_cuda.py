"""CUDA against fp32 on the CPU, with the tolerance of the CPU fast path (0.05 dB PSNR): the
fast path, the API, tiling and a few training steps. Every test here is marked ``cuda`` and
skipped without a GPU (tests/conftest.py); ``scripts/gpu_check.sh`` runs them on one."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sr import api, degrade, metrics, runtime
from sr.tiling import run_tiled
from conftest import REPO, blobs

pytestmark = pytest.mark.cuda

ZOO_ARCHS = {m["id"]: m["arch"] for m in json.loads((REPO / "sr" / "zoo.json").read_text())["models"]
             if m["kind"] == "generator"}
ARCH_IDS = sorted({json.dumps(a, sort_keys=True): i for i, a in ZOO_ARCHS.items()}.values())
TOL_DB = 0.05


def _randomised(arch: dict, seed: int = 0):
    from test_fastpath import _randomised as r

    return r(arch, seed)


@pytest.mark.parametrize("model_id", ARCH_IDS)
@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_cuda_fast_path_within_005_db_of_cpu_fp32(model_id, precision):
    g = _randomised(ZOO_ARCHS[model_id])
    hr = blobs(96, 96)
    lr = degrade.degrade(hr)
    ref = api.upscale(lr, g, precision="fp32")  # plain module on the CPU, fp32
    fast = runtime.optimize_for_inference(g, precision, device="cuda")
    assert isinstance(fast, runtime.FastGenerator) and fast.backend == "torch"
    assert fast.device.type == "cuda" and next(fast.core.parameters()).is_cuda
    out = api.upscale(lr, fast, precision=fast.fast_precision)
    assert out.shape == ref.shape and out.dtype == ref.dtype == np.uint8
    p32, pcuda = metrics.score(hr, ref)["psnr"], metrics.score(hr, out)["psnr"]
    assert abs(p32 - pcuda) < TOL_DB, (model_id, precision, p32, pcuda)


def test_cuda_api_matches_cpu_layout_and_dtype(tiny_zoo):
    for img in (blobs(20, 24), blobs(20, 24, c=3), blobs(17, 19, dtype=np.uint16)):
        cpu = api.upscale(img, "srgan-improved", device="cpu", precision="fp32")
        gpu = api.upscale(img, "srgan-improved", device="cuda")
        assert gpu.shape == cpu.shape and gpu.dtype == cpu.dtype and gpu.flags.c_contiguous
        top = 255.0 if img.dtype == np.uint8 else 65535.0
        assert np.abs(gpu.astype(np.float64) - cpu).max() / top < 0.05
    assert api.fast_model("srgan-improved", device="cuda").device.type == "cuda"
    assert api.fast_model("srgan-improved", device="cpu").device.type == "cpu"


def test_cuda_tiling_equals_whole_and_uses_free_memory(monkeypatch):
    from sr import device

    g = _randomised(ZOO_ARCHS["srgan-lite"])
    fast = runtime.optimize_for_inference(g, "fp32", device="cuda")
    x = blobs(83, 77).astype(np.float32)[None, None] / 255
    whole = run_tiled(fast, x, tile=None, precision="fp32")
    tiled = run_tiled(fast, x, tile=32, precision="fp32")
    cpu = run_tiled(runtime.optimize_for_inference(g, "fp32", device="cpu", backend="torch"), x, tile=None,
                    precision="fp32")
    assert whole.dtype == np.float32 and whole.shape == cpu.shape
    assert np.abs(whole - tiled).max() < 1e-3 and np.abs(whole - cpu).max() < 1e-2
    asked = []
    real = device.cuda_tile
    monkeypatch.setattr("sr.tiling.cuda_tile", lambda *a, **k: asked.append(real(*a, **k)) or 48)
    seen = []
    monkeypatch.setattr(fast, "forward", lambda t, f=fast.forward: seen.append(t.shape[-1]) or f(t))
    small = run_tiled(fast, x, precision="fp32")  # default tile: from free memory (here forced to 48)
    assert asked and asked[0] >= device.MIN_CUDA_TILE and max(seen) <= 48 + 2 * fast.receptive_radius()
    assert np.abs(small - whole).max() < 1e-3


def _hpa(tmp_path):
    from PIL import Image

    folder = tmp_path / "hpa"
    folder.mkdir()
    for i in range(6):
        fid = "%08x-bb%02d-11e8-b2b8-ac1f6b6435d0" % (i * 7919, i)
        Image.fromarray(blobs(96, 96, seed=i)).save(folder / f"{fid}_green.png")
    return folder


def _train(tmp_path, folder, init, name, **kw):
    from sr.train import TrainArgs, train

    args = dict(model="srgan-improved", data=str(folder), out=str(tmp_path / name), batch=4, patch=32,
                log_every=2, val_every=4, ckpt_every=2, val_images=2, val_crop=None, export=False,
                init=str(init), seed=1)
    args.update(kw)
    return train(TrainArgs(**args))


def _last_val(tmp_path, name) -> float:
    import csv

    rows = list(csv.DictReader(open(tmp_path / name / "srgan-improved" / "log.csv")))
    return float([r for r in rows if r["val_psnr"]][-1]["val_psnr"])


def test_cuda_training_steps_match_cpu_and_resume_across_devices(tiny_zoo, tmp_path):
    _, weights = tiny_zoo
    folder = _hpa(tmp_path)
    init = weights / "srgan-improved"
    r_cpu = _train(tmp_path, folder, init, "cpu", steps=4, device="cpu", precision="fp32")
    r_gpu = _train(tmp_path, folder, init, "gpu", steps=4, device="cuda", precision="auto")
    assert r_cpu["finished"] and r_gpu["finished"]
    assert abs(_last_val(tmp_path, "cpu") - _last_val(tmp_path, "gpu")) < TOL_DB
    state = json.loads((tmp_path / "gpu" / "srgan-improved" / "state.json").read_text())
    assert state["info"]["device"] == "cuda" and state["info"]["precision"] == "bf16"
    # started on the GPU, resumed on the CPU; then back on the GPU
    assert _train(tmp_path, folder, init, "gpu", steps=6, device="cpu", precision="fp32")["step"] == 6
    assert _train(tmp_path, folder, init, "gpu", steps=8, device="cuda")["step"] == 8


def test_cuda_fp16_training_uses_a_grad_scaler(tiny_zoo, tmp_path, monkeypatch):
    from sr import train_device

    made = []
    real = train_device.make_scaler
    monkeypatch.setattr(train_device, "make_scaler", lambda p, d: made.append(real(p, d)) or made[-1])
    _, weights = tiny_zoo
    r = _train(tmp_path, _hpa(tmp_path), weights / "srgan-improved", "fp16", steps=4, device="cuda",
               precision="fp16")
    assert r["finished"] and made and isinstance(made[0], torch.amp.GradScaler)
