"""Compare a GAN run's chosen checkpoint with its last one (the EMA at the last step), blended with
the parent and followed by back-projection, on validation images only: the HPA validation fields
of the training folder and every image of the ``--other`` folders (centre crops of 512 px), as
``sr blend choose`` scores them.

    python scripts/checkpoint_blend_check.py --run ~/.cache/sr/runs/srgan-improved --model srgan-improved \\
        --data ../shared/data/hpa/sanch7_kaggle2018_singlechannel/train_sample --blends 0.6,0.8,1.0 \\
        --other DIR [--other DIR ...] [--consistency 3] [--snapshot STEP ...]

``--snapshot STEP`` adds the generator validated at that step (``gen_<step>.safetensors`` in the run
folder, kept since session 9) as another candidate. Each candidate's line ``mad@1`` is its mean
absolute difference from the parent on the HPA validation fields (8-bit grey levels), the GAN
unblended with its back-projection, the parent as it runs: the issue's "visibly differs" measure.
"""
from __future__ import annotations

import argparse

import numpy as np
from safetensors.torch import load_file

from sr import api, blend, data, zoo
from sr.blend import OTHER_CROP, _pairs, _score
from sr.validation import snapshot_path


def score(net, pairs, k: int) -> str:
    r = _score(net, pairs, consistency=k, precision="bf16")
    return f"dP {r['dpsnr']:+.3f}±{r['dpsnr_ci']:.3f} dS {r['dssim']:+.4f}±{r['dssim_ci']:.4f} lsd {r['lsd']:.2f}"


def mad_to_parent(net, parent_outs, pairs, k: int) -> float:
    """Mean |GAN - parent| over ``pairs`` (grey levels of the 8-bit references); ``parent_outs``:
    the parent's outputs on the same pairs."""
    d = [np.abs(api.upscale(lr, net, consistency=k, precision="bf16").astype(np.float64) - p).mean()
         for (_, lr, _, _), p in zip(pairs, parent_outs)]
    return float(np.mean(d))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="the run folder (state.safetensors holds the last EMA)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="the training folder (its validation fields are used)")
    ap.add_argument("--blends", default="0.6,0.8,1.0")
    ap.add_argument("--other", action="append", default=[])
    ap.add_argument("--consistency", type=int, default=3)
    ap.add_argument("--snapshot", type=int, action="append", default=[], help="a validated step's generator too")
    args = ap.parse_args()
    _, val = data.split(data.scan(args.data), 0.1)
    refs = _pairs(data.load_planes(val))
    extra = _pairs(data.load_planes([s for d in args.other for s in data.scan(d)]), OTHER_CROP)
    parent = zoo.load(blend.parent_of(args.model))
    state = load_file(f"{args.run}/state.safetensors")
    ema = {k[5:].replace("::", "."): v for k, v in state.items() if k.startswith("ema::")}
    last = zoo.load(args.model)
    last.load_state_dict(ema, strict=True)
    candidates = {"shipped": zoo.load(args.model), "last-ema": last}
    for step in args.snapshot:
        g = zoo.load(args.model)
        g.load_state_dict(load_file(str(snapshot_path(args.run, step))), strict=True)
        candidates[f"step-{step}"] = g
    parent_outs = [api.upscale(lr, parent, consistency=0, precision="bf16").astype(np.float64) for _, lr, _, _ in refs]
    for name, g in candidates.items():
        print(name, "mad@1", f"{mad_to_parent(g, parent_outs, refs, args.consistency):.3f}", flush=True)
        for a in (float(b) for b in args.blends.split(",")):
            net = blend.interpolate(parent, g, a)
            print(name, a, "HPA", score(net, refs, args.consistency), "| other", score(net, extra, args.consistency),
                  flush=True)


if __name__ == "__main__":
    main()
