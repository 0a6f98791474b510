"""Training losses: pixel, content (feature-space) and adversarial.

Perceptual loss of the GAN stage (weights in each recipe of ``sr/zoo.json``)::

    L_G = pixel_weight * L_pix(SR, HR) + content_weight * L_content + adv_weight * L_adv

``L_pix`` is MSE or L1 (``recipe["pixel_loss"]``). ``L_adv`` (``recipe["gan_loss"]``) is the
standard non-saturating BCE of SRGAN (``"bce"``) or the relativistic average GAN of ESRGAN
(``"ragan"``: the discriminator judges whether a real image is more realistic than the
average fake, and the generator gets gradients from both real and fake images).

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


PIXEL_LOSSES = ("mse", "l1")
GAN_LOSSES = ("bce", "ragan")


def pixel_loss(kind: str, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return F.mse_loss(sr.float(), hr.float())
    if kind == "l1":
        return F.l1_loss(sr.float(), hr.float())
    raise ValueError(f"unknown pixel loss {kind!r} ({' | '.join(PIXEL_LOSSES)})")


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def adversarial_g(fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None,
                  kind: str = "bce") -> torch.Tensor:
    """Generator loss. ``real_logits`` (detached) are needed for ``"ragan"``."""
    if kind == "bce":
        return _bce(fake_logits, 1.0)
    if kind == "ragan":
        real, fake = real_logits.float().detach(), fake_logits.float()
        return 0.5 * (_bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0))
    raise ValueError(f"unknown GAN loss {kind!r} ({' | '.join(GAN_LOSSES)})")


def adversarial_d(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    if kind == "bce":
        return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
    if kind == "ragan":
        real, fake = real_logits.float(), fake_logits.float()
        return _bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0)
    raise ValueError(f"unknown GAN loss {kind!r} ({' | '.join(GAN_LOSSES)})")


def d_probabilities(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "bce") -> tuple[float, float]:
    """What the discriminator believes (for the balance log): P(real is real), P(fake is real).
    For RaGAN: P(real more realistic than the average fake), P(fake more realistic than the
    average real)."""
    real, fake = real_logits.detach().float(), fake_logits.detach().float()
    if kind == "ragan":
        real, fake = real - fake.mean(), fake - real.mean()
    return torch.sigmoid(real).mean().item(), torch.sigmoid(fake).mean().item()
