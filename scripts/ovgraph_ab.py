"""Interleaved A/B of OpenVINO's CPU plugin with and without the graph rewrites of `sr/ovgraph.py`.

    python scripts/ovgraph_ab.py [--model srgan-improved] [--precision int8|bf16] [--side 128] [--rounds 40]

Takes the model as the fast path runs it (the shipped int8 form, or the converted fp32 graph compiled
in bf16), builds the graph *without* the rewrites (each `DepthToSpace` back to torch's reshape ->
transpose -> reshape; each residual sum computed apart for its quantiser merged back into the one sum;
bf16: the upsampling convolutions converted without phase windows),
checks both compute the same, and times them call by call in turn: prints each one's median and the
median of the per-call ratios. Run it on an idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def undo_depth_to_space(model):
    from openvino import opset13 as ops

    n = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "DepthToSpace":
            continue
        r = int(op.get_attributes()["block_size"])
        src = op.input_value(0)
        shape = ops.shape_of(src, "i64")
        nc = ops.gather(shape, ops.constant(np.array([0], dtype=np.int64)), ops.constant(np.int64(0)))
        c = ops.divide(ops.gather(shape, ops.constant(np.array([1], dtype=np.int64)), ops.constant(np.int64(0))),
                       ops.constant(np.array([r * r], dtype=np.int64)))
        hw = ops.gather(shape, ops.constant(np.array([2, 3], dtype=np.int64)), ops.constant(np.int64(0)))
        six = ops.reshape(src, ops.concat([nc, c, ops.constant(np.array([r, r], dtype=np.int64)), hw], 0), False)
        t = ops.transpose(six, ops.constant(np.array([0, 1, 4, 2, 5, 3], dtype=np.int64)))
        out = ops.reshape(t, ops.concat([nc, c, ops.multiply(hw, ops.constant(np.array([r, r], dtype=np.int64)))], 0), False)
        for target in list(op.output(0).get_target_inputs()):
            target.replace_source_output(out.output(0))
        n += 1
    model.validate_nodes_and_infer_types()
    return model, n


def undo_sums_apart(model):
    n = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Add" and op.get_friendly_name().endswith("/for_quantizer"):
            original = next(t.get_node() for t in op.input_value(0).get_target_inputs()
                            if t.get_node().get_friendly_name() + "/for_quantizer" == op.get_friendly_name())
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(original.output(0))
            n += 1
    model.validate_nodes_and_infer_types()
    return model, n


def main() -> int:
    import openvino as ov

    from sr import int8, ovcache, zoo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="srgan-improved")
    ap.add_argument("--precision", default="int8", choices=["int8", "bf16"])
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    core, fp, _ = int8.source_core(a.model)
    in_c = zoo.get_entry(a.model).arch.get("in_channels", 1)

    def load(phase_windows=True):
        if a.precision == "bf16":
            return ovcache._convert(core, in_c, phase_windows=phase_windows)
        xml = int8.find(a.model, fp)
        if xml is None:
            raise SystemExit(f"{a.model} has no int8 model for its current weights")
        return ov.Core().read_model(str(xml))

    after = load()
    before, n_d2s = undo_depth_to_space(load(phase_windows=False))
    before, n_sums = undo_sums_apart(before)
    n_phase = sum(1 for op in after.get_ordered_ops() if op.get_friendly_name().endswith("/phase0"))
    cfg = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": a.threads}
    reqs = {k: ov.Core().compile_model(m, "CPU", cfg).create_infer_request() for k, m in
            (("without rewrites", before), ("with rewrites", after))}
    x = np.random.default_rng(0).random((1, in_c, a.side, a.side)).astype(np.float32)
    outs = {k: r.infer({0: x})[0].copy() for k, r in reqs.items()}
    diff = float(np.abs(outs["without rewrites"] - outs["with rewrites"]).max())
    times = {k: [] for k in reqs}
    for _ in range(3):
        for r in reqs.values():
            r.infer({0: x})
    for _ in range(a.rounds):
        for k, r in reqs.items():
            t = time.perf_counter()
            r.infer({0: x})
            times[k].append(time.perf_counter() - t)
    ratio = statistics.median(p / q for p, q in zip(times["without rewrites"], times["with rewrites"]))
    print(f"{a.model} {a.precision} {a.side}->{a.side * 4}: undone {n_d2s} DepthToSpace, {n_sums} sums apart, {n_phase} phase-window stages; "
          f"max |difference| {diff:.4g} (output 0..1)")
    for k, v in times.items():
        print(f"  {k}: median {1e3 * statistics.median(v):.2f} ms")
    print(f"  median per-call ratio without/with: {ratio:.3f}x ({a.rounds} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
