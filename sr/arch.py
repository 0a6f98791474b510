"""SRGAN-family architectures: one configurable generator, one configurable discriminator.

Every zoo variant is a configuration of these two classes, not a copy of code:

* ``norm``: ``"batch"`` (SRGAN, Ledig et al. 2017) or ``"none"`` (the improved variant of
  arXiv 2010.04634: no batch norm in the generator).
* ``upsample``: ``"pixelshuffle"`` (conv to 4x width + sub-pixel shuffle, SRGAN) or
  ``"nearest-conv"`` (nearest-neighbour x2 then a 3x3 conv, the improved variant).
* discriminator ``head``: ``"dense"`` (flatten + dense 1024, SRGAN) or ``"gap"`` (global
  average pooling + dense, the improved variant).

Generators subclass huggingface_hub's ``PyTorchModelHubMixin`` so that their ``__init__``
arguments are the ``config.json`` of the Hub repo and ``save_pretrained`` writes
``model.safetensors``. Loading goes through :mod:`sr.zoo`, which verifies checksums and
loads strictly.
"""
from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

NORMS = ("batch", "none")
UPSAMPLES = ("pixelshuffle", "nearest-conv")
HEADS = ("dense", "gap")


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")


def _act(kind: str, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    raise ValueError(f"act={kind!r} is not one of ('prelu', 'relu', 'lrelu')")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.Identity()


class ResidualBlock(nn.Module):
    """conv-[BN]-act-conv-[BN] + identity."""

    def __init__(self, width: int, norm: str, act: str):
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=bias),
            _norm(norm, width),
            _act(act, width),
            nn.Conv2d(width, width, 3, padding=1, bias=bias),
            _norm(norm, width),
        )

    def forward(self, x):
        return x + self.body(x)


class UpsampleX2(nn.Module):
    """One x2 upsampling stage."""

    def __init__(self, c_in: int, c_out: int, mode: str, act: str):
        super().__init__()
        self.mode = mode
        if mode == "pixelshuffle":
            self.conv = nn.Conv2d(c_in, c_out * 4, 3, padding=1)
            self.shuffle = nn.PixelShuffle(2)
        else:
            self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.act = _act(act, c_out)

    def forward(self, x):
        if self.mode == "pixelshuffle":
            x = self.shuffle(self.conv(x))
        else:
            x = self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
        return self.act(x)


class Generator(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="sr-microscopy",
    tags=["super-resolution", "microscopy", "srgan"],
    license="cc-by-nc-4.0",
    pipeline_tag="image-to-image",
):
    """SRResNet / SRGAN generator family (x4 by default).

    Input and output are ``(N, C, H, W)`` float tensors with intensities in ``[0, 1]``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 64,
        blocks: int = 16,
        norm: str = "batch",
        upsample: str = "pixelshuffle",
        up_width: int | None = None,
        scale: int = 4,
        head_kernel: int = 9,
        tail_kernel: int = 9,
        act: str = "prelu",
    ):
        super().__init__()
        _check("norm", norm, NORMS)
        _check("upsample", upsample, UPSAMPLES)
        if scale not in (2, 4, 8):
            raise ValueError(f"scale={scale} must be 2, 4 or 8")
        if head_kernel % 2 == 0 or tail_kernel % 2 == 0:
            raise ValueError("head_kernel and tail_kernel must be odd")
        up_width = up_width or width
        self.config = dict(
            in_channels=in_channels, out_channels=out_channels, width=width, blocks=blocks,
            norm=norm, upsample=upsample, up_width=up_width, scale=scale,
            head_kernel=head_kernel, tail_kernel=tail_kernel, act=act,
        )
        self.scale = scale
        self.head = nn.Sequential(
            nn.Conv2d(in_channels, width, head_kernel, padding=head_kernel // 2), _act(act, width)
        )
        self.body = nn.Sequential(*[ResidualBlock(width, norm, act) for _ in range(blocks)])
        self.body_tail = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=norm == "none"), _norm(norm, width)
        )
        stages, c = [], width
        for _ in range({2: 1, 4: 2, 8: 3}[scale]):
            stages.append(UpsampleX2(c, up_width, upsample, act))
            c = up_width
        self.upsample = nn.Sequential(*stages)
        self.tail = nn.Conv2d(c, out_channels, tail_kernel, padding=tail_kernel // 2)

    def forward(self, x):
        h = self.head(x)
        h = h + self.body_tail(self.body(h))
        return self.tail(self.upsample(h))

    def receptive_radius(self) -> int:
        """Receptive-field radius in low-resolution pixels (rounded up).

        A tile margin at least this wide makes tiled inference equal to whole-image
        inference up to floating-point rounding.
        """
        lr, hr = self._radius_parts()
        return int(lr + hr + 0.999) + 1

    def receptive_radii(self) -> tuple[int, int]:
        """``(trunk, upsampler)`` receptive-field radii in low-resolution pixels (rounded up):
        the head and residual body (what runs at the input's resolution, up to the global skip
        sum), then the upsampling stages and the output convolution (:mod:`sr.staged`)."""
        c = self.config
        trunk = c["head_kernel"] // 2 + 2 * c["blocks"] + 1
        lr, hr = self._radius_parts()
        return trunk, int(lr - trunk + hr + 0.999) + 1

    def _radius_parts(self) -> tuple[float, float]:
        c = self.config
        lr = c["head_kernel"] // 2 + 2 * c["blocks"] + 1  # head, blocks, body tail
        hr = 0.0
        f = 1
        for _ in range({2: 1, 4: 2, 8: 3}[c["scale"]]):
            # pixelshuffle conv runs before the x2, nearest-conv after it
            lr += 1 if c["upsample"] == "pixelshuffle" else 0
            f *= 2
            hr += (1 / f) if c["upsample"] == "nearest-conv" else 0
        hr += (c["tail_kernel"] // 2) / f
        return lr, hr


class Discriminator(nn.Module):
    """SRGAN discriminator: 8 conv blocks (LeakyReLU 0.2, BN from the 2nd) + a head.

    ``head="dense"``: flatten + dense(1024) + LeakyReLU + dense(1); needs a fixed
    ``patch_size``. ``head="gap"``: global average pooling + dense(1024) + LeakyReLU +
    dense(1); any input size.
    """

    def __init__(self, in_channels: int = 1, width: int = 64, head: str = "dense",
                 patch_size: int = 96, norm: str = "batch"):
        super().__init__()
        _check("head", head, HEADS)
        _check("norm", norm, NORMS)
        self.config = dict(in_channels=in_channels, width=width, head=head,
                           patch_size=patch_size, norm=norm)
        layers, c = [], in_channels
        plan = [(width, 1), (width, 2), (2 * width, 1), (2 * width, 2),
                (4 * width, 1), (4 * width, 2), (8 * width, 1), (8 * width, 2)]
        for i, (c_out, stride) in enumerate(plan):
            layers.append(nn.Conv2d(c, c_out, 3, stride=stride, padding=1, bias=(i == 0 or norm == "none")))
            if i > 0:
                layers.append(_norm(norm, c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c = c_out
        self.features = nn.Sequential(*layers)
        if head == "dense":
            side = patch_size
            for _ in range(4):
                side = (side + 1) // 2
            self.pool = nn.Flatten()
            n_in = c * side * side
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            n_in = c
        self.classifier = nn.Sequential(nn.Linear(n_in, 1024), nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


class FeatureNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="sr-microscopy",
    tags=["microscopy", "feature-extractor", "vgg"],
    license="cc-by-nc-4.0",
    pipeline_tag="image-classification",
):
    """Small VGG-style network trained from scratch on microscopy (mSRGAN's content net).

    ``features(x)`` returns the activation used for the content loss; ``forward`` returns
    class logits (e.g. which stain a patch shows).
    """

    def __init__(self, in_channels: int = 1, widths: tuple | list = (32, 64, 128, 128),
                 num_classes: int = 4, feature_layer: int = 3):
        super().__init__()
        widths = list(widths)
        self.config = dict(in_channels=in_channels, widths=widths, num_classes=num_classes,
                           feature_layer=feature_layer)
        stages, c = [], in_channels
        for i, w in enumerate(widths):
            stage = [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True),
                     nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True)]
            if i > 0:
                stage.insert(0, nn.MaxPool2d(2))
            stages.append(nn.Sequential(*stage))
            c = w
        self.stages = nn.ModuleList(stages)
        self.feature_layer = feature_layer
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                                        nn.Linear(c, num_classes))

    def features(self, x):
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i == self.feature_layer:
                return x
        return x

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        return self.classifier(x)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold eval-mode BatchNorm2d layers into the preceding Conv2d (in place).

    Used by the fast inference path; the result computes the same function in eval mode.
    """
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            items = list(module._modules.items())
            for (name_a, a), (name_b, b) in zip(items, items[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                    scale = b.weight / torch.sqrt(b.running_var + b.eps)
                    a.weight.mul_(scale.view(-1, 1, 1, 1))
                    bias = a.bias if a.bias is not None else torch.zeros_like(b.running_mean)
                    a.bias = nn.Parameter((bias - b.running_mean) * scale + b.bias)
                    module._modules[name_b] = nn.Identity()
    return model


def describe(config: dict) -> str:
    """One line naming the three SRGAN -> improved differences for a generator config."""
    return (f"{config['blocks']} residual blocks x {config['width']} channels, "
            f"{'batch norm' if config['norm'] == 'batch' else 'no batch norm'}, "
            f"{'sub-pixel (pixel-shuffle)' if config['upsample'] == 'pixelshuffle' else 'nearest + conv'} upsampling")
