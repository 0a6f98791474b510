"""Exact rewrites of converted OpenVINO graphs that OpenVINO's CPU plugin runs faster.

All keep the function (tests compare outputs); all were measured on the 2-core EPYC
(AVX512-BF16 and VNNI, no AMX) with interleaved calls at 128->512 (`docs/runtime_notes.md`):

* :func:`pixel_shuffles_to_depth_to_space`: torch's ``pixel_shuffle`` arrives as reshape (6-D)
  -> transpose -> reshape, which the CPU plugin runs with its reference transpose and a reorder
  back to channels-last before the next convolution. ``DepthToSpace`` (``depth_first`` is
  pixel_shuffle's channel order) has a vectorised kernel that works in channels-last: lite model
  ~5 % (bf16) and ~6 % (int8) faster, improved SRGAN 1-3 %.
* :func:`nearest_upsampling_as_phase_windows`: the fast path runs each
  nearest-x2 + 3x3 convolution stage as one 3x3 convolution to the 4 sub-pixel phases at the input
  resolution (:mod:`sr.runtime`), but each phase reads only a 2x2 window of it: 5 of its 9 taps
  are zeros. Four 2x2 convolutions (one per phase, padded so each lands in place) concatenated by
  phase do 4/9 of the multiply-adds; the concatenation is free in the blocked layout the bf16
  kernels use (with the DepthToSpace rewrite, the improved SRGAN ~1.2x faster in bf16) and a
  reference copy in int8's channels-last layout, which OpenVINO 2026.4's int8 convolutions more
  than pay for (improved SRGAN 1.1-1.2x faster in int8; :data:`sr.int8.PHASE_WINDOWS`).
* :func:`requantize_sums_apart`: in an int8 model whose residual sums stay in bf16
  (:mod:`sr.int8`), each sum feeds both the next block's quantiser and the next sum. The CPU
  plugin's quantiser node then picks a blocked layout: bf16 -> f32 blocked reorder, quantise,
  u8 blocked -> channels-last reorder, three passes per block. Computing the sum a second time
  for the quantiser (operands swapped, so the plugin does not merge it back) lets the plugin fuse
  the quantiser into that sum's kernel, which writes u8 channels-last directly: ~3 % for the
  improved SRGAN, same values up to the order of the bf16 additions.
"""
from __future__ import annotations

import numpy as np


def pixel_shuffles_to_depth_to_space(model):
    """Replace every reshape -> transpose(0, 1, 4, 2, 5, 3) -> reshape (a pixel shuffle) by
    ``DepthToSpace(depth_first)``; returns ``(model, count)`` (the model is changed in place)."""
    from openvino import opset13 as ops

    n = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Transpose":
            continue
        first, perm = op.input_value(0).get_node(), op.input_value(1).get_node()
        if first.get_type_name() != "Reshape" or perm.get_type_name() != "Constant":
            continue
        if [int(v) for v in perm.get_data()] != [0, 1, 4, 2, 5, 3]:
            continue
        shape6 = first.get_output_partial_shape(0)
        consumers = list(op.output(0).get_target_inputs())
        if len(consumers) != 1 or consumers[0].get_node().get_type_name() != "Reshape" or shape6.rank.get_length() != 6:
            continue
        if not (shape6[2].is_static and shape6[3].is_static) or shape6[2].get_length() != shape6[3].get_length():
            continue
        last = consumers[0].get_node()
        src = first.input_value(0)
        if src.get_partial_shape().rank.get_length() != 4:
            continue
        d2s = ops.depth_to_space(src, "depth_first", shape6[2].get_length())
        d2s.set_friendly_name(last.get_friendly_name())
        for target in list(last.output(0).get_target_inputs()):
            target.replace_source_output(d2s.output(0))
        n += 1
    if n:
        model.validate_nodes_and_infer_types()
    return model, n


def requantize_sums_apart(model):
    """Give each quantiser that reads a residual sum (an ``aten::add`` that other nodes also
    read) its own copy of that sum; returns ``(model, count)`` (changed in place)."""
    from openvino import opset13 as ops

    n = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "FakeQuantize":
            continue
        src = op.input_value(0)
        add = src.get_node()
        if add.get_type_name() != "Add" or "aten::add/" not in add.get_friendly_name():
            continue
        if len(src.get_target_inputs()) < 2:
            continue  # the quantiser is the sum's only reader: the plugin fuses it already
        twin = ops.add(add.input_value(1), add.input_value(0))
        twin.set_friendly_name(add.get_friendly_name() + "/for_quantizer")
        op.input(0).replace_source_output(twin.output(0))
        n += 1
    if n:
        model.validate_nodes_and_infer_types()
    return model, n


_PHASES = [divmod(p, 2) for p in range(4)]  # phase p = 2 * py + px (its channels: c * 4 + p)
_WINDOW = [np.pad(np.ones((2, 2), bool), ((py, 1 - py), (px, 1 - px))) for py, px in _PHASES]  # its 3x3 taps


def nearest_upsampling_as_phase_windows(model):
    """Replace each upsampling convolution whose 4 sub-pixel phases read 2x2 windows of its 3x3
    kernel (exact zeros elsewhere: a nearest-x2 + 3x3 stage rewritten by :mod:`sr.runtime`; a
    sub-pixel convolution with dense kernels is left alone) by four 2x2 convolutions with their
    bias and PReLU, concatenated phase-major; the consumer follows the new channel order
    (``DepthToSpace`` blocks-first, or a 1x1 convolution's input channels permuted). Returns
    ``(model, count)`` (changed in place)."""
    from openvino import opset13 as ops

    def const(node):
        return node.get_data() if node.get_type_name() == "Constant" else None

    n = 0
    for conv in model.get_ordered_ops():
        name = conv.get_friendly_name()
        if conv.get_type_name() != "Convolution" or not (name.startswith("__module.upsample.") and ".conv/" in name):
            continue
        w = const(conv.input_value(1).get_node())
        if w is None or w.ndim != 4 or w.shape[2:] != (3, 3) or w.shape[0] % 4:
            continue
        c = w.shape[0] // 4
        if any(np.any(w[p::4][:, :, ~_WINDOW[p]]) for p in range(4)):
            continue
        chain = [conv]
        for kind in ("Add", "PRelu"):
            readers = list(chain[-1].output(0).get_target_inputs())
            if len(readers) != 1 or readers[0].get_node().get_type_name() != kind:
                break
            chain.append(readers[0].get_node())
        if len(chain) != 3:
            continue
        _, add, prelu = chain
        b, slope = const(add.input_value(1).get_node()), const(prelu.input_value(1).get_node())
        if b is None or slope is None or b.size != 4 * c or slope.size not in (1, 4 * c):
            continue
        b, slope = b.reshape(-1), np.broadcast_to(slope.reshape(-1), (4 * c,))
        readers = [t.get_node() for t in prelu.output(0).get_target_inputs()]
        nxt = readers[0] if len(readers) == 1 else None
        to_space = nxt is not None and nxt.get_type_name() == "DepthToSpace" and nxt.get_attributes()["mode"] == "depth_first"
        wn = const(nxt.input_value(1).get_node()) if nxt is not None and nxt.get_type_name() == "Convolution" else None
        if not to_space and (wn is None or wn.shape[2:] != (1, 1)):
            continue
        x = conv.input_value(0)
        phases = []
        for p, (py, px) in enumerate(_PHASES):
            k = ops.convolution(x, ops.constant(np.ascontiguousarray(w[p::4, :, py:py + 2, px:px + 2])),
                                [1, 1], [1 - py, 1 - px], [py, px], [1, 1])
            k.set_friendly_name(f"{name}/phase{p}")
            k = ops.add(k, ops.constant(np.ascontiguousarray(b[p::4]).reshape(1, c, 1, 1).astype(np.float32)))
            phases.append(ops.prelu(k, ops.constant(np.ascontiguousarray(slope[p::4]).astype(np.float32))))
        out = ops.concat(phases, 1)
        order = np.array([ch * 4 + p for p in range(4) for ch in range(c)])  # new channel p * c + ch
        if to_space:
            d2s = ops.depth_to_space(out, "blocks_first", 2)
            d2s.set_friendly_name(nxt.get_friendly_name())
            for target in list(nxt.output(0).get_target_inputs()):
                target.replace_source_output(d2s.output(0))
        else:
            nxt.input(1).replace_source_output(ops.constant(np.ascontiguousarray(wn[:, order])).output(0))
            nxt.input(0).replace_source_output(out.output(0))
        n += 1
    if n:
        model.validate_nodes_and_infer_types()
    return model, n
