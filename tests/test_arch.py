import pytest
import torch
from torch import nn

from sr.arch import Discriminator, FeatureNet, Generator, fold_batchnorm

SMALL = dict(width=8, blocks=2, head_kernel=3, tail_kernel=3)


def _has(module, cls):
    return any(isinstance(m, cls) for m in module.modules())


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("upsample", ["pixelshuffle", "nearest-conv"])
def test_generator_configs_build_and_differ(norm, upsample):
    g = Generator(norm=norm, upsample=upsample, **SMALL).eval()
    assert _has(g, nn.BatchNorm2d) == (norm == "batch")
    assert _has(g, nn.PixelShuffle) == (upsample == "pixelshuffle")
    y = g(torch.rand(2, 1, 13, 21))
    assert y.shape == (2, 1, 52, 84)


def test_baseline_srgan_layout():
    g = Generator()  # Ledig et al.: 16 blocks, 64 wide, 9x9 head/tail, BN, sub-pixel
    assert len(g.body) == 16
    assert g.head[0].kernel_size == (9, 9) and g.tail.kernel_size == (9, 9)
    assert sum(isinstance(m, nn.PixelShuffle) for m in g.modules()) == 2
    assert isinstance(g.head[1], nn.PReLU)
    improved = Generator(norm="none", upsample="nearest-conv")
    # improved upsampling keeps 64 channels (no 256-wide conv)
    assert all(st.conv.out_channels == 64 for st in improved.upsample)
    assert all(st.conv.out_channels == 256 for st in g.upsample)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_scales_and_odd_sizes(scale):
    g = Generator(scale=scale, **SMALL).eval()
    for h, w in [(1, 1), (7, 3), (16, 17)]:
        assert g(torch.rand(1, 1, h, w)).shape == (1, 1, h * scale, w * scale)


def test_multichannel_generator():
    g = Generator(in_channels=3, out_channels=3, **SMALL).eval()
    assert g(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        Generator(norm="layer")
    with pytest.raises(ValueError):
        Generator(upsample="deconv")
    with pytest.raises(ValueError):
        Discriminator(head="attention")


def test_discriminator_heads():
    dense = Discriminator(head="dense", width=8, patch_size=96)
    gap = Discriminator(head="gap", width=8)
    assert isinstance(dense.pool, nn.Flatten)
    assert dense.classifier[0].in_features == 8 * 8 * 6 * 6
    assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in gap.modules())
    assert dense(torch.rand(2, 1, 96, 96)).shape == (2, 1)
    for side in (64, 96, 123):  # GAP accepts any size
        assert gap(torch.rand(2, 1, side, side)).shape == (2, 1)
    # BN from the 2nd conv block on, LeakyReLU 0.2 everywhere
    convs = [m for m in dense.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8
    assert sum(isinstance(m, nn.BatchNorm2d) for m in dense.features) == 7
    assert all(m.negative_slope == 0.2 for m in dense.modules() if isinstance(m, nn.LeakyReLU))


def test_receptive_radius_bounds_influence():
    torch.manual_seed(0)
    for cfg in (dict(SMALL), dict(SMALL, norm="none", upsample="nearest-conv")):
        g = Generator(**cfg).eval()
        r = g.receptive_radius()
        x = torch.rand(1, 1, 64, 64)
        x2 = x.clone()
        x2[0, 0, 32, 32] += 1.0
        with torch.no_grad():
            diff = (g(x) - g(x2)).abs()[0, 0] > 0
        ys, xs = torch.nonzero(diff, as_tuple=True)
        reach = max((ys.max() - 32 * 4).abs(), (ys.min() - 32 * 4).abs(), (xs.max() - 32 * 4).abs()) / 4
        assert reach <= r, (reach, r)
        assert reach >= r - 3  # the bound is tight


def test_fold_batchnorm_is_exact():
    torch.manual_seed(0)
    g = Generator(**SMALL)
    g.train()
    for _ in range(3):  # give BN non-trivial running stats
        g(torch.rand(4, 1, 16, 16))
    g.eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        ref = g(x)
        folded = fold_batchnorm(g)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), ref, atol=1e-5, rtol=1e-4)


def test_featurenet():
    f = FeatureNet(widths=[8, 8, 16, 16], num_classes=4)
    x = torch.rand(3, 1, 96, 96)
    assert f(x).shape == (3, 4)
    assert f.features(x).shape == (3, 16, 12, 12)


def test_save_pretrained_config_roundtrip(tmp_path):
    g = Generator(norm="none", upsample="nearest-conv", **SMALL)
    g.save_pretrained(str(tmp_path))
    assert (tmp_path / "model.safetensors").is_file()
    g2 = Generator.from_pretrained(str(tmp_path), strict=True)
    assert g2.config == g.config
    for a, b in zip(g.state_dict().values(), g2.state_dict().values()):
        assert torch.equal(a, b)
