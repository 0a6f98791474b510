import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sr import checkpoint, data, zoo
from sr.train import TrainArgs, train
from conftest import REPO, blobs


@pytest.fixture
def hpa_folder(tmp_path):
    """A tiny HPA-Kaggle-layout folder: 6 fields x 2 stains, 64x64 8-bit."""
    folder = tmp_path / "hpa"
    folder.mkdir()
    ids = ["%08x-bb%02d-11e8-b2b8-ac1f6b6435d0" % (i * 7919, i) for i in range(6)]
    for i, fid in enumerate(ids):
        for j, stain in enumerate(("green", "blue")):
            Image.fromarray(blobs(64, 64, seed=10 * i + j)).save(folder / f"{fid}_{stain}.png")
    return folder


def _args(tmp_path, folder, **kw):
    base = dict(data=str(folder), out=str(tmp_path / "runs"), batch=2, patch=32, log_every=2,
                val_every=4, ckpt_every=2, val_images=2, val_crop=32, precision="fp32")
    base.update(kw)
    return TrainArgs(**base)


def test_scan_parses_hpa_names_and_splits(hpa_folder):
    samples = data.scan(hpa_folder)
    assert len(samples) == 12 and {s.stain for s in samples} == {"green", "blue"}
    train_s, val_s = data.split(samples, 0.3)
    # all stains of one field land on the same side
    assert not {s.field_id for s in train_s} & {s.field_id for s in val_s}
    planes = data.load_planes(samples, min_size=32)
    lr, hr, y = data.PatchSampler(planes, patch=32).sample(np.random.default_rng(0), 4)
    assert lr.shape == (4, 1, 8, 8) and hr.shape == (4, 1, 32, 32) and set(y) <= {1, 2}


def test_sampler_skips_empty_background_unless_told_not_to():
    """By default a patch with almost no signal is redrawn; ``min_signal_fraction=0`` (the recipe
    option) keeps the flat background patches too."""
    hr = np.zeros((64, 128), np.float32)
    hr[:, 64:] = 0.8  # left half empty background, right half signal
    planes = [data.Plane(hr, hr[::4, ::4].copy(), hr, 0)]
    rng = np.random.default_rng(0)
    flat = lambda s: int(sum((h > 0.1).mean() == 0 for h in s.sample(rng, 64)[1]))  # noqa: E731
    assert flat(data.PatchSampler(planes, patch=32)) == 0
    assert flat(data.PatchSampler(planes, patch=32, min_signal_fraction=0)) > 5


def test_pretrain_resume_and_export(tiny_zoo, hpa_folder, tmp_path):
    reg, weights = tiny_zoo
    init = tmp_path / "init"
    shutil.copytree(weights / "srgan-improved", init)
    shutil.rmtree(weights / "srgan-improved")
    r1 = train(_args(tmp_path, hpa_folder, model="srgan-improved", steps=4, init=str(init), export=False))
    assert r1["step"] == 4 and checkpoint.exists(tmp_path / "runs" / "srgan-improved")
    r2 = train(_args(tmp_path, hpa_folder, model="srgan-improved", steps=6, init=str(init)))
    assert r2["step"] == 6
    rows = list(csv.DictReader(open(tmp_path / "runs" / "srgan-improved" / "log.csv")))
    assert [int(r["step"]) for r in rows if r["loss_d"]] == [2, 4, 6]  # resumed, not restarted
    assert rows[-1]["val_psnr"] and list((tmp_path / "runs" / "srgan-improved").glob("val_*.png"))
    # export pinned the new weights and the card, and the zoo loads them strictly
    zoo.reload_registry()
    e = zoo.get_entry("srgan-improved")
    assert e.sha256 == zoo.sha256_file(weights / "srgan-improved" / "model.safetensors")
    assert e.card["steps"] == 6 and "hardware" in e.card
    assert "Training run" in (weights / "srgan-improved" / "README.md").read_text()
    zoo.load("srgan-improved")


def test_gan_stage_freezes_generator_batchnorm(tiny_zoo, hpa_folder, tmp_path):
    """srgan's recipe fine-tunes with frozen BatchNorm: running statistics stay those of the
    initial generator (validation included), the affine weights still learn."""
    from safetensors.torch import load_file

    reg, weights = tiny_zoo
    assert zoo.get_entry("srgan").recipe["generator_bn"] == "frozen"
    init = tmp_path / "init"
    shutil.copytree(weights / "srgan", init)
    before = load_file(str(init / "model.safetensors"))
    train(_args(tmp_path, hpa_folder, model="srgan", steps=4, init=str(init), lr=1e-2))
    after = load_file(str(weights / "srgan" / "model.safetensors"))
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    affine = [k.rsplit(".", 1)[0] + ".weight" for k in stats if k.endswith("running_mean")]
    assert stats and all(np.array_equal(before[k], after[k]) for k in stats)
    assert any(not np.array_equal(before[k], after[k]) for k in affine)
    assert "frozen" in zoo.get_entry("srgan").card["generator_bn"]


def test_recipe_override_for_experiments(tiny_zoo, hpa_folder, tmp_path):
    from sr.train import merge_recipe

    base = zoo.get_entry("srgan").recipe
    r = merge_recipe(base, {"discriminator": {"head": "gap"}, "adv_weight": 0.0})
    assert r["discriminator"] == {**base["discriminator"], "head": "gap"} and r["adv_weight"] == 0.0
    assert base["discriminator"]["head"] == "dense"  # the registry entry is not touched
    with pytest.raises(SystemExit, match="no-export"):  # weights must never disagree with their card
        train(_args(tmp_path, hpa_folder, model="srgan", steps=2, recipe={"adv_weight": 0.0}))
    _, weights = tiny_zoo
    res = train(_args(tmp_path, hpa_folder, model="srgan", steps=2, init=str(weights / "srgan"),
                      recipe={"discriminator": {"head": "gap"}}, export=False))
    assert res["finished"] and "exported" not in res
    state = json.loads((tmp_path / "runs" / "srgan" / "state.json").read_text())
    assert state["info"]["args"]["recipe"] == {"discriminator": {"head": "gap"}}


def test_featurenet_stage(tiny_zoo, hpa_folder, tmp_path):
    r = train(_args(tmp_path, hpa_folder, model="msrgan-vgg", steps=4, export=False))
    assert r["finished"]
    rows = list(csv.DictReader(open(tmp_path / "runs" / "msrgan-vgg" / "log.csv")))
    assert rows[-1]["val_acc"] != ""


def test_ddp_two_ranks_agree(tiny_zoo, hpa_folder, tmp_path):
    reg, weights = tiny_zoo
    env = {**os.environ, "SR_REGISTRY": str(reg), "SR_WEIGHTS_DIR": str(weights), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "sr", "train", "--model", "srgan", "--data", str(hpa_folder), "--steps", "3",
           "--batch", "2", "--patch", "32", "--precision", "fp32", "--out", str(tmp_path / "runs"),
           "--init", str(weights / "srgan"), "--no-export", "--threads", "1"]
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    digests = json.loads((tmp_path / "runs" / "srgan" / "rank_digests.json").read_text())
    assert len(digests) == 2 and digests[0] == digests[1]


def test_gan_stage_selects_on_validation_and_exports_a_stopped_run(tiny_zoo, hpa_folder, tmp_path):
    """RaGAN + L1 + EMA: validation keeps the best checkpoint; --export-now ships it with its card."""
    _, weights = tiny_zoo
    recipe = {"gan_loss": "ragan", "pixel_loss": "l1", "ema": 0.9, "select": "lsd", "adv_weight": 0.005}
    res = train(_args(tmp_path, hpa_folder, model="srgan-improved", steps=4, val_every=2,
                      init=str(weights / "srgan-improved"), recipe=recipe, export=False))
    assert res["finished"]
    run_dir = tmp_path / "runs" / "srgan-improved"
    best = json.loads((run_dir / "best.json").read_text())
    assert best["criterion"] == "lsd" and best["step"] in (2, 4) and (run_dir / "best.safetensors").is_file()
    rows = [r for r in csv.DictReader(open(run_dir / "log.csv")) if r.get("val_dpsnr")]
    assert len(rows) == 2 and all(r["val_lsd"] and r["val_dpsnr_ci"] for r in rows)
    assert all(0 <= float(r["d_real"]) <= 1 for r in csv.DictReader(open(run_dir / "log.csv")) if r.get("d_real"))
    assert checkpoint.has_module(run_dir, "ema")
    assert sorted(p.name for p in run_dir.glob("gen_*.safetensors")) == ["gen_000002.safetensors", "gen_000004.safetensors"]
    # a stopped run is exported as it is: the chosen checkpoint and its step in the card
    out = train(_args(tmp_path, hpa_folder, model="srgan-improved", steps=4, export_now=True))
    assert out["exported"]
    card = zoo.get_entry("srgan-improved").card
    entry = zoo.get_entry("srgan-improved")
    assert card["selected_step"] == best["step"]
    assert card["recipe"] == {k: v for k, v in entry.recipe.items() if k != "stage"}  # the registry's recipe


def test_kept_best_is_rescored_when_validation_starts_back_projecting(tiny_zoo, hpa_folder, tmp_path):
    """A run resumed with a recipe that validates with back-projection (``consistency``) scores its
    kept checkpoint again the same way, so later checks are compared on the same footing."""
    _, weights = tiny_zoo
    recipe = {"gan_loss": "ragan", "pixel_loss": "l1", "ema": 0.9, "select": "lsd", "adv_weight": 0.005}
    train(_args(tmp_path, hpa_folder, model="srgan-improved", steps=2, val_every=2,
                init=str(weights / "srgan-improved"), recipe=recipe, export=False))
    run_dir = tmp_path / "runs" / "srgan-improved"
    before = json.loads((run_dir / "best.json").read_text())
    assert before["consistency"] == 0
    train(_args(tmp_path, hpa_folder, model="srgan-improved", steps=2, val_every=2,
                recipe={**recipe, "consistency": 2}, export=False))
    after = json.loads((run_dir / "best.json").read_text())
    assert after["consistency"] == 2 and after["step"] == before["step"]
    assert after["rescored_from"]["score"] == before["score"]
    assert after["val_psnr"] != before["val_psnr"]  # back-projection changes the output
    assert abs(after["score"] + after["val_lsd"]) < 1e-3 or after["score"] < -900  # the lsd rule, as in training
