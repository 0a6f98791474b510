"""Per-model test tensors, as the bioimage.io spec asks: a small input and its expected output.

``weights/<id>/test_input.npy`` (float32, N,C,H,W in model units) and ``test_output.npy`` (the
model's fp32 eager output) are written next to each model's weights when it is exported
(``python -m sr zoo --write-test-tensors`` for all), and :func:`check` runs the model on the
input and compares (the test suite does this for every shipped model).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import zoo

INPUT_FILE, OUTPUT_FILE = "test_input.npy", "test_output.npy"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hpa_test_02ad0dd2_green.png"
ATOL = 2e-4  # fp32 on different CPUs (oneDNN kernels) agree far closer than this


def make_input(model_id: str) -> np.ndarray:
    """A deterministic input: an LR crop of an example HPA image (a 96 px HR patch for feature
    networks), or seeded noise when the example is missing."""
    from . import degrade, imio

    entry = zoo.get_entry(model_id)
    side = 96 if entry.kind == "featurenet" else 24
    try:
        a, _ = imio.read_image(EXAMPLE)
        a = a if a.ndim == 2 else a[..., 0]
        if entry.kind != "featurenet":
            a = degrade.degrade(a)
        y, x = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
        x0 = a[y:y + side, x:x + side].astype(np.float32) / 255.0
    except Exception:  # noqa: BLE001 - an installed package without examples/
        x0 = np.random.default_rng(0).random((side, side), dtype=np.float32)
    c = entry.arch.get("in_channels", 1)
    return np.ascontiguousarray(np.repeat(x0[None, None], c, axis=1))


def run(model_id: str, x: np.ndarray, net=None) -> np.ndarray:
    import copy

    import torch

    net = copy.deepcopy(net).eval() if net is not None else zoo.load(model_id)  # eval: BN running statistics
    with torch.inference_mode():
        return net.float()(torch.from_numpy(x)).float().numpy()


def write(model_id: str, folder: Path | None = None, net=None) -> Path:
    folder = Path(folder or zoo.weights_dir() / model_id)
    x = make_input(model_id)
    np.save(folder / INPUT_FILE, x)
    np.save(folder / OUTPUT_FILE, run(model_id, x, net))
    return folder


def check(model_id: str, folder: Path | None = None) -> float:
    """Max absolute difference between the model's output and its stored test output; raises
    ``AssertionError`` above :data:`ATOL` and ``FileNotFoundError`` without test tensors."""
    folder = Path(folder or zoo.resolve(model_id))
    x = np.load(folder / INPUT_FILE, allow_pickle=False)
    expected = np.load(folder / OUTPUT_FILE, allow_pickle=False)
    got = run(model_id, x)
    if got.shape != expected.shape:
        raise AssertionError(f"{model_id}: output shape {got.shape}, expected {expected.shape}")
    err = float(np.abs(got - expected).max())
    if err > ATOL:
        raise AssertionError(f"{model_id}: max abs difference {err:.3g} > {ATOL}")
    return err
