"""How far a training checkpoint's generator is from its pixel-loss parent, on validation fields.

    python scripts/compare_to_parent.py RUN_DIR/state.safetensors MODEL [--prefix g::] [--fields 8]

Prints, averaged over the first N validation fields of the HPA train folder (held out by field
id; never the test split): PSNR / SSIM differences to the parent, globally and on the cells, the
change of the dark background's mean, the mean absolute difference from the parent (all pixels and
cells only, grey levels) and the change of the high-frequency log-spectral distance to the
reference (negative: closer to the reference's spectrum).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from safetensors.torch import load_file

from sr import data, metrics, spectral, zoo
from sr.arch import Generator

HPA_TRAIN = "../shared/data/hpa/sanch7_kaggle2018_singlechannel/train_sample"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("state")
    ap.add_argument("model")
    ap.add_argument("--prefix", default="g::", help="key prefix in the file ('g::' raw generator, 'ema::' EMA, '' weights)")
    ap.add_argument("--fields", type=int, default=8)
    ap.add_argument("--data", default=HPA_TRAIN)
    a = ap.parse_args()
    e = zoo.get_entry(a.model)
    g = Generator(**e.arch)
    t = load_file(a.state)
    g.load_state_dict({k[len(a.prefix):]: v for k, v in t.items() if k.startswith(a.prefix)}, strict=True)
    g.eval()
    parent = zoo.load(e.recipe.get("init", a.model))  # a pixel-loss model: its committed weights
    _, val = data.split(data.scan(a.data))
    rows = []
    for p in data.load_planes(val)[: a.fields]:
        x = torch.from_numpy(p.lr)[None, None]
        with torch.inference_mode():
            o = np.clip(np.rint(g(x)[0, 0].numpy() * 255), 0, 255).astype(np.uint8)
            op = np.clip(np.rint(parent(x)[0, 0].numpy() * 255), 0, 255).astype(np.uint8)
        m = metrics.foreground_mask(p.hr_raw)
        s = metrics.score(p.hr_raw, o, foreground=True, mask=m)
        sp = metrics.score(p.hr_raw, op, foreground=True, mask=m)
        d = np.abs(o.astype(int) - op)
        rows.append((s["psnr"] - sp["psnr"], s["ssim"] - sp["ssim"], s["fg_psnr"] - sp["fg_psnr"],
                     s["fg_ssim"] - sp["fg_ssim"], o[~m].mean() - op[~m].mean(), d.mean(), d[m].mean(),
                     spectral.hf_lsd(p.hr_raw, o) - spectral.hf_lsd(p.hr_raw, op),
                     s["ssim"], sp["ssim"], o[~m].mean(), op[~m].mean(), p.hr_raw[~m].mean()))
    r = np.array(rows).mean(0)
    print(f"{a.model} vs its parent on {len(rows)} validation fields: dPSNR {r[0]:+.2f} dB, dSSIM {r[1]:+.3f}, "
          f"cells dPSNR {r[2]:+.2f}, cells dSSIM {r[3]:+.3f}, background mean {r[4]:+.2f} grey levels, "
          f"|difference| {r[5]:.2f} (cells {r[6]:.2f}), HF spectral distance {r[7]:+.2f} dB")
    print(f"absolute: SSIM {r[8]:.3f} (parent {r[9]:.3f}); background mean {r[10]:.2f} grey levels "
          f"(parent {r[11]:.2f}, reference {r[12]:.2f})")


if __name__ == "__main__":
    main()
