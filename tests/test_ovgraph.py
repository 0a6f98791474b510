"""The OpenVINO graph rewrites (sr.ovgraph) keep the function and do what they say."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sr import int8, ovcache, runtime
from sr.openvino_path import openvino_core
from conftest import blobs

ov = pytest.importorskip("openvino")


def _tiny(arch: str):
    from sr.arch import Generator
    from sr.testing import TINY_ARCHS, _full_arch

    torch.manual_seed(0)
    return Generator(**_full_arch(**{**TINY_ARCHS[arch], "blocks": 2, "width": 16})).eval()


def _types(model):
    return [op.get_type_name() for op in model.get_ordered_ops()]


def _run(model, x, hint="f32"):
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})({0: x})[0]


@pytest.mark.parametrize("arch", ["srgan", "srgan-improved"])
def test_converted_pixel_shuffles_are_depth_to_space_and_exact(arch):
    core = openvino_core(runtime.FastGenerator(_tiny(arch), "fp32"))
    model = ovcache._convert(core, 1)
    assert _types(model).count("DepthToSpace") >= 2 and "Transpose" not in _types(model)
    phases = [op.get_friendly_name() for op in model.get_ordered_ops() if "/phase" in op.get_friendly_name()]
    # nearest + conv stages (the improved generator) become 2x2 phase windows; the baseline's
    # sub-pixel convolutions have dense 3x3 kernels and stay as they are
    assert len(phases) == (8 if arch == "srgan-improved" else 0)
    x = torch.rand(1, 1, 19, 23)
    with torch.no_grad():
        want = core(x).numpy()
    np.testing.assert_allclose(_run(model, x.numpy()), want, atol=2e-5)


def test_depth_to_space_rewrite_leaves_other_transposes_alone():
    from openvino import opset13 as ops

    from sr.ovgraph import pixel_shuffles_to_depth_to_space

    p = ops.parameter([1, 8, 5, 6], np.float32)
    t = ops.transpose(p, ops.constant(np.array([0, 1, 3, 2], dtype=np.int64)))
    model = ov.Model([t], [p])
    _, n = pixel_shuffles_to_depth_to_space(model)
    assert n == 0 and "Transpose" in _types(model)


def test_quantised_sums_computed_apart_keep_the_values():
    pytest.importorskip("nncf")
    from sr.ovgraph import requantize_sums_apart

    core = openvino_core(runtime.FastGenerator(_tiny("srgan-improved"), "fp32"))
    calib = [blobs(24, 24, seed=i).astype(np.float32)[None, None] / 255 for i in range(4)]
    q = int8.quantize_model(ovcache._convert(core, 1, phase_windows=False), calib, int8.PARTS["ends-and-sums-bf16"])
    x = blobs(32, 28, seed=9).astype(np.float32)[None, None] / 255
    before = _run(q, x)
    adds = _types(q).count("Add")
    q2, n = requantize_sums_apart(q.clone())
    assert n >= 1 and _types(q2).count("Add") == adds + n
    for op in q2.get_ordered_ops():  # every quantiser of a residual sum reads its own copy
        if op.get_type_name() == "FakeQuantize" and "aten::add/" in op.input_value(0).get_node().get_friendly_name():
            assert len(op.input_value(0).get_target_inputs()) == 1
    np.testing.assert_array_equal(_run(q2, x), before)  # fp32 sums: the same numbers
    assert requantize_sums_apart(q2)[1] == 0  # idempotent


def test_int8_is_quantised_from_the_phase_window_graph():
    """sr.int8 quantises the graph with the 2x2 phase windows (sr.int8.PHASE_WINDOWS): the windows
    survive quantisation as int8 convolutions and the output stays close to the fp32 core's."""
    pytest.importorskip("nncf")
    core = openvino_core(runtime.FastGenerator(_tiny("srgan-improved"), "fp32"))
    calib = [blobs(24, 24, seed=i).astype(np.float32)[None, None] / 255 for i in range(4)]
    assert int8.PHASE_WINDOWS
    q = int8.quantize_model(ovcache._convert(core, 1, phase_windows=int8.PHASE_WINDOWS), calib,
                            int8.PARTS["ends-and-sums-bf16"])
    windows = [op for op in q.get_ordered_ops() if op.get_friendly_name().endswith(tuple(f"/phase{p}" for p in range(4)))]
    assert len(windows) == 8
    def quantised(node):  # through the layout ops between the stages (concat, DepthToSpace)
        if node.get_type_name() in ("Concat", "DepthToSpace"):
            return all(quantised(v.get_node()) for v in node.input_values()[:1 if node.get_type_name() == "DepthToSpace" else None])
        return node.get_type_name() == "FakeQuantize"

    assert all(quantised(op.input_value(0).get_node()) for op in windows)
    x = blobs(32, 28, seed=9).astype(np.float32)[None, None] / 255
    with torch.no_grad():
        want = core(torch.from_numpy(x)).numpy()
    got = _run(q, x)
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 0.02 * max(float(np.abs(want).mean()), 1e-3) + 2e-3


def test_int8_drift_is_measured_with_back_projection():
    """sr.int8.drift scores the outputs as inference runs them: with the model's back-projection steps."""
    pytest.importorskip("nncf")
    from sr import degrade

    core = openvino_core(runtime.FastGenerator(_tiny("srgan-improved"), "fp32"))
    calib = [blobs(24, 24, seed=i).astype(np.float32)[None, None] / 255 for i in range(4)]
    fp32 = ovcache._convert(core, 1)
    q = int8.quantize_model(fp32, calib, int8.PARTS["ends-and-sums-bf16"])
    ref, qc = ovcache.compile_model(fp32, "fp32", 1), ovcache.compile_model(q, "int8", 1)
    hrs = [blobs(48, 40, seed=20 + i) for i in range(2)]
    lrs = [degrade.degrade(h, 4) for h in hrs]
    plain, projected = int8.drift(ref, qc, lrs, hrs), int8.drift(ref, qc, lrs, hrs, consistency=2)
    assert plain["images"] == projected["images"] == 2
    assert projected["psnr_fp32"] != plain["psnr_fp32"]  # the projection changed what was scored
