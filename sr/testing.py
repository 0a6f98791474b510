"""Test helpers shipped with the package: a tiny zoo of randomly initialised models.

Used by the test suite and by ``scripts/loadtest.py`` (the real app with tiny models); never
committed as weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .zoo import DEFAULT_REGISTRY

# The tiny zoo keeps the real ids so the app's defaults work, with tiny architectures.
TINY_ARCHS = {
    "srgan": dict(width=8, blocks=1, norm="batch", upsample="pixelshuffle", up_width=8,
                  head_kernel=3, tail_kernel=3),
    "srgan-improved": dict(width=8, blocks=1, norm="none", upsample="nearest-conv", up_width=8,
                           head_kernel=3, tail_kernel=3),
    "msrgan": dict(width=8, blocks=1, norm="batch", upsample="pixelshuffle", up_width=8,
                   head_kernel=3, tail_kernel=3),
    # the pixel-loss parents (blend tests ask for them: make_tiny_zoo(root, ids=ALL_TINY))
    "srresnet": dict(width=8, blocks=1, norm="batch", upsample="pixelshuffle", up_width=8,
                     head_kernel=3, tail_kernel=3),
    "srresnet-improved": dict(width=8, blocks=1, norm="none", upsample="nearest-conv", up_width=8,
                              head_kernel=3, tail_kernel=3),
}
DEFAULT_TINY = ("srgan", "srgan-improved", "msrgan")
ALL_TINY = tuple(TINY_ARCHS)


def _full_arch(**kw):
    base = dict(in_channels=1, out_channels=1, width=64, blocks=16, norm="batch", upsample="pixelshuffle",
                up_width=64, scale=4, head_kernel=9, tail_kernel=9, act="prelu")
    base.update(kw)
    return base


def make_tiny_zoo(root: Path, ids=DEFAULT_TINY, seed: int = 0) -> tuple[Path, Path]:
    """Write a registry + weights folder with tiny random generators; returns (registry, weights)."""
    from sr.arch import Generator
    from sr.zoo import sha256_file

    real = json.loads(DEFAULT_REGISTRY.read_text())
    weights = root / "weights"
    models = []
    for m in real["models"]:
        if m["kind"] == "baseline":
            models.append(m)
        elif m["id"] in ids:
            torch.manual_seed(seed + (0 if m["id"] in DEFAULT_TINY else 1))  # parents differ from their GANs
            arch = _full_arch(**TINY_ARCHS[m["id"]])
            g = Generator(**arch).eval()
            folder = weights / m["id"]
            g.save_pretrained(str(folder))
            (folder / "config.json").write_text(json.dumps(arch))
            models.append({**m, "arch": arch, "sha256": sha256_file(folder / "model.safetensors"),
                           "revision": None, "card": {"note": "tiny random test model"}})
        else:  # the rest of the zoo, not trained
            models.append({**m, "sha256": None, "revision": None, "card": {}})
    reg = root / "zoo.json"
    reg.write_text(json.dumps({"hub_org_default": "test-org", "models": models}, indent=1))
    return reg, weights
