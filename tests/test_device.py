"""The device setting on a CPU machine: resolution (CUDA mocked), one-line refusals, tiles from
free GPU memory, portable checkpoints, prefetched batches and the fp16 scaler wiring."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sr import checkpoint, device, runtime, train_device
from sr.arch import Generator
from sr.testing import TINY_ARCHS, _full_arch
from conftest import blobs


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("SR_DEVICE", raising=False)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setattr(device, "_default", None)


@pytest.fixture
def fake_gpu(monkeypatch, no_gpu):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_is_cuda_only_with_a_gpu(no_gpu, monkeypatch):
    assert device.resolve_device() == "cpu" and device.resolve_device("auto") == "cpu"
    assert device.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.resolve_device() == "cuda" and device.resolve_device("auto") == "cuda"
    assert device.resolve_device("cpu") == "cpu"
    monkeypatch.setenv("SR_DEVICE", "cpu")
    assert device.resolve_device() == "cpu"  # the setting wins over auto
    assert device.resolve_device("cuda") == "cuda"  # an explicit argument wins over the setting


def test_zerogpu_counts_as_a_gpu(no_gpu, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert device.on_zerogpu() and device.resolve_device() == "cuda"


def test_cuda_without_gpu_is_one_line_error(no_gpu, monkeypatch):
    with pytest.raises(device.DeviceError) as e:
        device.resolve_device("cuda")
    assert "\n" not in str(e.value) and "no CUDA GPU" in str(e.value)
    monkeypatch.setenv("SR_DEVICE", "cuda")
    with pytest.raises(device.DeviceError):
        device.resolve_device()
    for bad in ("gpu", "cuda:x", "cpu:1", "tpu"):
        with pytest.raises(device.DeviceError, match="not one of"):
            device.resolve_device(bad)
    assert issubclass(device.DeviceError, ValueError)  # the CLI's exit-2 class


def test_cuda_index(fake_gpu):
    assert device.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(device.DeviceError, match="2 GPU"):
        device.resolve_device("cuda:2")


def test_set_default_is_the_cli_flag(no_gpu, monkeypatch):
    monkeypatch.setenv("SR_DEVICE", "auto")
    device.set_default("cpu")
    assert device.resolve_device() == "cpu"
    with pytest.raises(device.DeviceError):
        device.set_default("cuda")  # refused at once, before any work
    device.set_default(None)
    assert device._default is None


def test_precision_per_device(monkeypatch):
    with pytest.raises(ValueError, match="CUDA only"):
        runtime.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="CUDA only"):
        runtime.autocast("fp16", "cpu")
    assert runtime.resolve_precision("fp16", "cuda") == "fp16"
    assert runtime.resolve_precision("fp32", "cuda:0") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert runtime.resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert runtime.resolve_precision("auto", "cuda:0") == "fp16"
    assert runtime.resolve_precision("auto", "cpu") in ("bf16", "fp32")  # never fp16 on CPU
    assert runtime.dtype_of("fp16") == torch.float16


def test_cuda_tile_from_free_memory(monkeypatch):
    free = {"b": 8 * 2**30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (free["b"], 80 * 2**30))
    big = device.cuda_tile(64, 1, 2)
    assert big % 32 == 0 and device.MIN_CUDA_TILE <= big <= device.MAX_CUDA_TILE
    assert device.cuda_tile(64, 3, 4) < big  # more channels in the batch, fp32: smaller tiles
    free["b"] = 1
    assert device.cuda_tile(64, 1, 2) == device.MIN_CUDA_TILE
    free["b"] = 10**15
    assert device.cuda_tile(64, 1, 2) == device.MAX_CUDA_TILE


def test_cli_refuses_missing_gpu_in_one_line(no_gpu, monkeypatch, capsys, tmp_path):
    from sr.cli import main

    img = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(blobs(16, 16)).save(img)
    for argv, env in ((["upscale", str(img), "--out", str(tmp_path / "o"), "--device", "cuda"], None),
                      (["upscale", str(img), "--out", str(tmp_path / "o"), "--model", "bicubic"], "cuda"),
                      (["train", "--model", "srgan", "--data", str(tmp_path), "--steps", "1", "--device", "cuda"], None),
                      (["bench", "--quick", "--device", "cuda"], None),
                      (["evaluate", "--data", str(tmp_path), "--device", "cuda"], None)):
        if env:
            monkeypatch.setenv("SR_DEVICE", env)
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "no CUDA GPU" in err
        monkeypatch.delenv("SR_DEVICE", raising=False)
        device.set_default(None)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_api_device_argument(tiny_zoo, no_gpu):
    from sr import api

    img = blobs(12, 10)
    out = api.upscale(img, "srgan-improved", device="cpu")
    assert out.shape == (48, 40) and out.dtype == np.uint8
    assert api.fast_model("srgan-improved", device="cpu").device == torch.device("cpu")
    with pytest.raises(device.DeviceError):
        api.upscale(img, "srgan-improved", device="cuda")
    with pytest.raises(device.DeviceError):
        api.fast_model("srgan-improved", device="cuda")
    g = Generator(**_full_arch(**TINY_ARCHS["srgan-improved"])).eval()
    assert api.upscale(img, g, device="cpu").shape == (48, 40)


def test_app_shows_missing_gpu_as_user_error(no_gpu, monkeypatch):
    import gradio as gr

    from sr.app.errors import user_errors

    @user_errors
    def handler():
        device.resolve_device("cuda")

    with pytest.raises(gr.Error) as e:
        handler()
    assert "no CUDA GPU" in e.value.message


def _tiny_gen() -> Generator:
    torch.manual_seed(0)
    return Generator(**_full_arch(**TINY_ARCHS["srgan-improved"]))


def test_checkpoint_follows_the_modules_device(tmp_path):
    """Saved from CPU, loaded into modules on another device ('meta' stands in for a GPU): the
    weights go where the module is, the Adam state follows its parameters."""
    g = _tiny_gen()
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    g(torch.rand(1, 1, 8, 8)).mean().backward()
    opt.step()
    checkpoint.save(tmp_path, {"g": g}, {"g": opt}, {"step": 1, "device": "cpu"})
    g2 = _tiny_gen()
    train_device.move_modules({"g": g2}, "meta")  # as sr.train does: move, then build the optimizer
    opt2 = torch.optim.Adam(g2.parameters(), lr=1e-3)
    assert all(p.device.type == "meta" for p in g2.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "copying ... to a meta parameter is a no-op": meta has no data
        info = checkpoint.load(tmp_path, {"g": g2}, {"g": opt2})
    assert info["step"] == 1
    states = list(opt2.state.values())
    assert states and all(s["exp_avg"].device.type == "meta" for s in states)
    # and back on the CPU: identical tensors
    g3 = _tiny_gen()
    opt3 = torch.optim.Adam(g3.parameters(), lr=1e-3)
    checkpoint.load(tmp_path, {"g": g3}, {"g": opt3})
    for a, b in zip(g.state_dict().values(), g3.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_writes_cpu_tensors(tmp_path, monkeypatch):
    seen = []
    real = checkpoint.save_file

    def spy(tensors, path):
        seen.extend(v.device.type for v in tensors.values())
        return real(tensors, path)

    monkeypatch.setattr(checkpoint, "save_file", spy)
    g = _tiny_gen()
    checkpoint.save(tmp_path, {"g": g}, {}, {"step": 0})
    assert seen and set(seen) == {"cpu"}


class _Sampler:
    def sample(self, rng, batch):
        lr = rng.random((batch, 1, 4, 4), dtype=np.float32)
        return lr, np.repeat(np.repeat(lr, 4, 2), 4, 3), rng.integers(0, 4, batch)


def test_prefetched_batches_equal_in_loop_batches():
    sync = train_device.Batches(_Sampler(), 3, 0, 2, "cpu", True, 5, 9)
    pre = train_device.Batches(_Sampler(), 3, 0, 2, "cpu", True, 5, 9, depth=2, prefetch=True)
    for step in range(5, 9):
        a, b = sync.get(step), pre.get(step)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and np.array_equal(a[2], b[2])
        assert b[0].is_contiguous(memory_format=torch.channels_last)
    pre.close()
    early = train_device.Batches(_Sampler(), 3, 0, 2, "cpu", False, 0, 100, depth=2, prefetch=True)
    early.get(0)
    early.close()  # stops the producer although 99 batches are left
    assert not early._thread.is_alive()


def test_scaler_only_for_fp16_on_cuda():
    assert train_device.make_scaler("fp16", "cpu") is None
    assert train_device.make_scaler("bf16", "cuda") is None
    assert train_device.make_scaler("fp32", "cuda:0") is None
    assert train_device.dist_backend("cuda:1") == "nccl" and train_device.dist_backend("cpu") == "gloo"


def test_run_device_per_torchrun_rank(fake_gpu, monkeypatch):
    picked = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: picked.append(str(d)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert train_device.run_device("cuda") == "cuda:1" and picked == ["cuda:1"]
    assert train_device.run_device("cpu") == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert train_device.run_device("auto") == "cuda"


def test_training_records_device_and_resumes_on_cpu(tiny_zoo, tmp_path):
    import json

    from PIL import Image

    from sr.train import TrainArgs, train

    folder = tmp_path / "hpa"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(blobs(64, 64, seed=i)).save(folder / f"{'%08x' % i}-bb00-11e8-b2b8-ac1f6b6435d0_green.png")
    kw = dict(model="srgan-improved", data=str(folder), out=str(tmp_path / "runs"), batch=2, patch=32,
              log_every=2, val_every=2, ckpt_every=2, val_images=1, val_crop=32, precision="fp32",
              export=False, init=str(tiny_zoo[1] / "srgan-improved"))
    assert train(TrainArgs(steps=2, device="cpu", **kw))["step"] == 2
    state = json.loads((tmp_path / "runs" / "srgan-improved" / "state.json").read_text())
    assert state["info"]["device"] == "cpu" and state["info"]["args"]["device"] == "cpu"
    # as if it had run on a GPU: the resumed run (auto = CPU here) continues from the checkpoint
    state["info"]["device"] = "cuda"
    (tmp_path / "runs" / "srgan-improved" / "state.json").write_text(json.dumps(state))
    assert train(TrainArgs(steps=4, device=None, **kw))["step"] == 4
