"""Exact rewrites of converted OpenVINO graphs that OpenVINO's CPU plugin runs faster.

Both keep the function (tests compare outputs); both were measured on the 2-core EPYC
(AVX512-BF16 and VNNI, no AMX) with interleaved calls at 128->512 (`docs/runtime_notes.md`):

* :func:`pixel_shuffles_to_depth_to_space`: torch's ``pixel_shuffle`` arrives as reshape (6-D)
  -> transpose -> reshape, which the CPU plugin runs with its reference transpose and a reorder
  back to channels-last before the next convolution. ``DepthToSpace`` (``depth_first`` is
  pixel_shuffle's channel order) has a vectorised kernel that works in channels-last: lite model
  ~5 % (bf16) and ~6 % (int8) faster, improved SRGAN 1-3 %.
* :func:`requantize_sums_apart`: in an int8 model whose residual sums stay in bf16
  (:mod:`sr.int8`), each sum feeds both the next block's quantiser and the next sum. The CPU
  plugin's quantiser node then picks a blocked layout: bf16 -> f32 blocked reorder, quantise,
  u8 blocked -> channels-last reorder, three passes per block. Computing the sum a second time
  for the quantiser (operands swapped, so the plugin does not merge it back) lets the plugin fuse
  the quantiser into that sum's kernel, which writes u8 channels-last directly: ~3 % for the
  improved SRGAN, same values up to the order of the bf16 additions.
"""
from __future__ import annotations


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
