"""Training losses: pixel, content (feature-space) and adversarial.

Perceptual loss of the GAN stage (weights in each recipe of ``sr/zoo.json``)::

    L_G = pixel_weight * MSE(SR, HR) + content_weight * L_content + adv_weight * BCE(D(SR), 1)

Content networks (``recipe["content"]``):

* ``"mse"``: no feature network; the content term is the pixel MSE itself (Ledig et al.'s
  SRGAN-MSE). ImageNet VGG weights cannot be downloaded here, so this is what ``srgan`` and
  ``srgan-improved`` use (their model cards say so).
* ``"featurenet:<id>"``: features of a zoo :class:`sr.arch.FeatureNet` trained on microscopy
  (mSRGAN's idea). The loss is the feature MSE divided by the mean square of the HR features
  (scale-free, so one weight works across networks).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ContentLoss(nn.Module):
    def __init__(self, spec: str, featurenet: nn.Module | None = None):
        super().__init__()
        self.spec = spec
        if spec.startswith("featurenet:"):
            if featurenet is None:
                raise ValueError(f"content {spec!r} needs a feature network")
            self.net = featurenet.eval().requires_grad_(False)
        elif spec == "mse":
            self.net = None
        else:
            raise ValueError(f"unknown content loss {spec!r} (mse | featurenet:<zoo id>)")

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            return F.mse_loss(sr.float(), hr.float())
        f_sr = self.net.features(sr).float()
        with torch.no_grad():
            f_hr = self.net.features(hr).float()
        return F.mse_loss(f_sr, f_hr) / (f_hr.pow(2).mean() + 1e-8)


def adversarial_g(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float32))


def adversarial_d(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    real = F.binary_cross_entropy_with_logits(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
    return real + fake
