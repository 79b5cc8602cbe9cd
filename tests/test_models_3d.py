"""3-D models (SmallCNN3D, ResNet3D, UNet3D): output shapes, clear errors, gradients reach every
parameter, train/eval behaviour, the registry, and (with torch) the same outputs, buffers and gradients
as the same architectures written in PyTorch given the same weights (torch's state_dict loads key for
key, so the module names are proven to match). Tiny volumes and narrow widths keep it fast."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad import nn
from tinygrad_rad.models import (
    MODELS,
    MODELS_3D,
    ResNet18_3D,
    ResNet50_3D,
    SmallCNN3D,
    UNet3D,
    build_model,
)

try:
    import torch
    import torch.nn as tnn
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the test oracle) is not installed")


# ------------------------------------------------------------- reference architectures in PyTorch
if torch is not None:

    def _tcbr(a, b):
        return [tnn.Conv3d(a, b, 3, padding=1, bias=False), tnn.BatchNorm3d(b), tnn.ReLU()]

    class TSmallCNN3D(tnn.Module):
        """The issue's reference: 4 conv-BN-ReLU stages 16->128, max-pools after stages 1 and 2."""

        def __init__(self, cin, ncls, p=0.3, widths=(16, 32, 64, 128)):
            super().__init__()
            w1, w2, w3, w4 = widths
            self.features = tnn.Sequential(*_tcbr(cin, w1), tnn.MaxPool3d(2), *_tcbr(w1, w2),
                                           tnn.MaxPool3d(2), *_tcbr(w2, w3), *_tcbr(w3, w4))
            self.avgpool = tnn.AdaptiveAvgPool3d(1)
            self.dropout = tnn.Dropout(p)
            self.fc = tnn.Linear(w4, ncls)

        def forward(self, x):
            return self.fc(self.dropout(torch.flatten(self.avgpool(self.features(x)), 1)))

    class TBasic3d(tnn.Module):
        expansion = 1

        def __init__(self, inp, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv3d(inp, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm3d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv3d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm3d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TBottle3d(tnn.Module):
        expansion = 4

        def __init__(self, inp, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv3d(inp, planes, 1, bias=False)
            self.bn1 = tnn.BatchNorm3d(planes)
            self.conv2 = tnn.Conv3d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm3d(planes)
            self.conv3 = tnn.Conv3d(planes, planes * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm3d(planes * 4)
            self.relu = tnn.ReLU()
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TResNet3D(tnn.Module):
        """MedMNIST's ResNet + 3D: torchvision's ResNet with 3-D layers (3x3x3 stride-1 stem for '28')."""

        def __init__(self, block, layers, cin, ncls, variant="28", width=64):
            super().__init__()
            self.inplanes = width
            if variant == "imagenet":
                self.conv1 = tnn.Conv3d(cin, width, 7, 2, 3, bias=False)
                self.maxpool = tnn.MaxPool3d(3, 2, 1)
            else:
                self.conv1 = tnn.Conv3d(cin, width, 3, 1, 1, bias=False)
                self.maxpool = tnn.Identity()
            self.bn1 = tnn.BatchNorm3d(width)
            self.relu = tnn.ReLU()
            self.layer1 = self._make(block, width, layers[0])
            self.layer2 = self._make(block, 2 * width, layers[1], 2)
            self.layer3 = self._make(block, 4 * width, layers[2], 2)
            self.layer4 = self._make(block, 8 * width, layers[3], 2)
            self.avgpool = tnn.AdaptiveAvgPool3d((1, 1, 1))
            self.fc = tnn.Linear(8 * width * block.expansion, ncls)

        def _make(self, block, planes, n, stride=1):
            ds = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                out = planes * block.expansion
                ds = tnn.Sequential(tnn.Conv3d(self.inplanes, out, 1, stride, bias=False),
                                    tnn.BatchNorm3d(out))
            layers = [block(self.inplanes, planes, stride, ds)]
            self.inplanes = planes * block.expansion
            layers += [block(self.inplanes, planes) for _ in range(1, n)]
            return tnn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    class TDouble3d(tnn.Module):
        def __init__(self, cin, cout, bn=True):
            super().__init__()
            layers = []
            for c in (cin, cout):
                layers.append(tnn.Conv3d(c, cout, 3, padding=1, bias=not bn))
                if bn:
                    layers.append(tnn.BatchNorm3d(cout))
                layers.append(tnn.ReLU())
            self.block = tnn.Sequential(*layers)

        def forward(self, x):
            return self.block(x)

    class TUp3d(tnn.Module):
        def __init__(self, cin, cout, up, bn):
            super().__init__()
            if up == "transpose":
                self.up = tnn.ConvTranspose3d(cin, cout, 2, stride=2)
            else:
                self.up = tnn.Sequential(tnn.Upsample(scale_factor=2, mode="trilinear", align_corners=False),
                                         tnn.Conv3d(cin, cout, 1))
            self.conv = TDouble3d(2 * cout, cout, bn)

        def forward(self, x, skip):
            return self.conv(torch.cat([self.up(x), skip], 1))

    class TUNet3D(tnn.Module):
        def __init__(self, cin, ncls, depth, base, bn=True, up="transpose"):
            super().__init__()
            chans = [base * 2**i for i in range(depth + 1)]
            self.down = tnn.ModuleList()
            c = cin
            for ch in chans[:-1]:
                self.down.append(TDouble3d(c, ch, bn))
                c = ch
            self.pool = tnn.MaxPool3d(2)
            self.bottleneck = TDouble3d(chans[-2], chans[-1], bn)
            self.ups = tnn.ModuleList([TUp3d(chans[i + 1], chans[i], up, bn) for i in reversed(range(depth))])
            self.head = tnn.Conv3d(chans[0], ncls, 1)

        def forward(self, x):
            skips = []
            for b in self.down:
                x = b(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottleneck(x)
            for u, s in zip(self.ups, reversed(skips)):
                x = u(x, s)
            return self.head(x)


def _count(m) -> int:
    return sum(p.numel() for p in m.parameters())


def _match_torch(ours, theirs, shape, dtype="float64"):
    """Same keys and parameter count; after loading torch's weights (BN statistics and affine
    randomised, so eval mode is a real test): the same eval output, the same train-mode output and
    updated BN buffers, and the same gradients of every parameter and of the input for one backward."""
    tol = dict(rtol=1e-8, atol=1e-9) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)
    tdt = getattr(torch, dtype)
    theirs.to(tdt)
    tsd = theirs.state_dict()
    assert list(ours.state_dict()) == list(tsd)
    assert _count(ours) == _count(theirs)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for mod in theirs.modules():
            if isinstance(mod, tnn.BatchNorm3d):
                for v, (lo, hi) in ((mod.weight, (0.5, 1.5)), (mod.running_var, (0.5, 1.5))):
                    v.copy_(torch.tensor(rng.uniform(lo, hi, v.shape)))
                for v in (mod.bias, mod.running_mean):
                    v.copy_(torch.tensor(rng.normal(0, 0.1, v.shape)))
    if dtype == "float64":
        ours.double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal(shape).astype(dtype)

    ours.eval()
    theirs.eval()
    out = ours(tr.tensor(x))
    ref = theirs(torch.tensor(x))
    assert out.dtype == getattr(tr, dtype)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **tol)

    ours.train()
    theirs.train()
    for mod in [*ours.modules(), *theirs.modules()]:  # the two frameworks draw different dropout masks
        if type(mod).__name__ == "Dropout":
            mod.p = 0.0
    xt, xo = torch.tensor(x, requires_grad=True), tr.tensor(x, requires_grad=True)
    out, ref = ours(xo), theirs(xt)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), **tol)
    w = rng.standard_normal(out.shape).astype(dtype)
    (out * tr.tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(xo.grad.numpy(), xt.grad.numpy(), **tol, err_msg="input")
    tparams = dict(theirs.named_parameters())
    for k, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[k].grad.numpy(), **tol, err_msg=k)
    tbufs = dict(theirs.named_buffers())
    for k, b in ours.named_buffers():
        np.testing.assert_allclose(b.numpy(), tbufs[k].numpy(), **tol, err_msg=k)


# --------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("size", [(16, 16, 16), (8, 12, 10), (4, 4, 4)])
def test_smallcnn3d_shapes(size):
    m = SmallCNN3D(in_channels=2, num_classes=3)
    assert m(tr.randn(2, 2, *size)).shape == (2, 3)
    assert m.forward_features(tr.randn(2, 2, *size)).shape == (2, 128, *(s // 4 for s in size))


def test_resnet3d_shapes():
    m = ResNet18_3D(1, 2, width=4)
    x = tr.randn(2, 1, 16, 16, 16)
    assert m(x).shape == (2, 2)
    assert m.forward_features(x).shape == (2, 32, 2, 2, 2)
    m = ResNet18_3D(1, 2, variant="imagenet", width=4)
    assert m.conv1.weight.shape == (4, 1, 7, 7, 7)
    x = tr.randn(2, 1, 32, 32, 32)
    assert m(x).shape == (2, 2)
    assert m.forward_features(x).shape == (2, 32, 1, 1, 1)
    m = ResNet50_3D(3, 5, width=2)
    assert m.fc.weight.shape == (5, 64)
    assert m(tr.randn(2, 3, 8, 8, 8)).shape == (2, 5)


def test_resnet18_3d_full_size():
    """The MedMNIST 'ResNet-18 + 3D' itself: 64-wide 3x3x3 stem, stride 1, no max-pool; its
    parameter count is the 2-D ResNet-18's with every conv kernel three times as big."""
    m = build_model("resnet18_3d", in_channels=1, num_classes=2)
    assert m.conv1.weight.shape == (64, 1, 3, 3, 3) and isinstance(m.maxpool, nn.Identity)
    assert m.layer4[0].conv1.weight.shape == (512, 256, 3, 3, 3)
    assert m.layer2[0].downsample[0].weight.shape == (128, 64, 1, 1, 1)
    conv = sum(p.numel() for k, p in m.named_parameters() if p.ndim == 5)
    m2d = build_model("resnet18", in_channels=1, num_classes=2)
    conv2d_3x3 = sum(p.numel() for p in m2d.parameters() if p.ndim == 4 and p.shape[-1] == 3)
    conv2d_1x1 = sum(p.numel() for p in m2d.parameters() if p.ndim == 4 and p.shape[-1] == 1)
    assert conv == 3 * conv2d_3x3 + conv2d_1x1
    assert _count(m) == 33_140_802
    y = m(tr.randn(2, 1, 8, 8, 8))
    assert y.shape == (2, 2) and np.isfinite(y.numpy()).all()


@pytest.mark.parametrize("up", ["transpose", "interp"])
@pytest.mark.parametrize("depth,size", [(1, (2, 6, 4)), (2, (8, 4, 12))])
def test_unet3d_shapes(up, depth, size):
    net = UNet3D(in_channels=2, num_classes=3, depth=depth, base_channels=2, up=up)
    assert net(tr.randn(2, 2, *size)).shape == (2, 3, *size)


# -------------------------------------------------------------------------------------- errors
def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"5-D input \(N, C, D, H, W\)"):
        SmallCNN3D(1, 2)(tr.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="in_channels=1"):
        ResNet18_3D(1, 2, width=2)(tr.randn(1, 3, 8, 8, 8))
    with pytest.raises(ValueError, match="variant"):
        ResNet18_3D(1, 2, variant="cifar")
    with pytest.raises(ValueError, match="widths"):
        SmallCNN3D(1, 2, widths=(8, 16))
    net = UNet3D(depth=2, base_channels=2)
    with pytest.raises(ValueError, match=r"divisible by 2\*\*depth = 4, got 8x6x8"):
        net(tr.randn(1, 1, 8, 6, 8))
    with pytest.raises(ValueError, match="expected input"):
        net(tr.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="up must be"):
        UNet3D(up="bicubic")
    with pytest.raises(ValueError, match="depth"):
        UNet3D(depth=0)


# ------------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("name,kw", [("smallcnn3d", {}), ("resnet18_3d", {"width": 4}),
                                     ("resnet50_3d", {"width": 2}),
                                     ("unet3d", {"depth": 2, "base_channels": 2}),
                                     ("unet3d", {"depth": 1, "base_channels": 2, "up": "interp",
                                                 "batch_norm": False})])
def test_gradients_reach_every_parameter(name, kw):
    m = build_model(name, in_channels=1, num_classes=3, **kw)
    x = tr.randn(2, 1, 8, 8, 8)
    out = m(x)
    if name == "unet3d":
        loss = nn.CrossEntropyLoss()(out, tr.tensor(np.random.default_rng(0).integers(0, 3, (2, 8, 8, 8))))
    else:
        loss = nn.CrossEntropyLoss()(out, tr.tensor([0, 2]))
    loss.backward()
    for k, p in m.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, k
        assert np.isfinite(p.grad.numpy()).all(), k
        assert np.abs(p.grad.numpy()).sum() > 0, k


def test_train_eval_differences():
    m = SmallCNN3D(1, 2, dropout=0.5, widths=(4, 4, 8, 8))
    bn = m.features[1]
    x = tr.randn(4, 1, 8, 8, 8)
    rm = bn.running_mean.numpy().copy()
    a, b = m(x).numpy(), m(x).numpy()
    assert not np.allclose(a, b)  # dropout (and BN batch statistics) in train mode
    assert not np.allclose(bn.running_mean.numpy(), rm)
    assert int(bn.num_batches_tracked.item()) == 2
    m.eval()
    rm = bn.running_mean.numpy().copy()
    c, d = m(x).numpy(), m(x[:1]).numpy()
    np.testing.assert_allclose(c[:1], d, rtol=1e-5, atol=1e-6)  # eval: per-sample, deterministic
    np.testing.assert_array_equal(m(x).numpy(), c)
    np.testing.assert_array_equal(bn.running_mean.numpy(), rm)
    assert int(bn.num_batches_tracked.item()) == 2


def test_registry():
    assert {"smallcnn3d", "resnet18_3d", "resnet50_3d", "unet3d"} <= set(MODELS_3D)
    assert set(MODELS_3D) <= set(MODELS)
    assert isinstance(build_model("SmallCNN3D", 1, 2), SmallCNN3D)
    m = build_model("resnet18_3d", in_channels=2, num_classes=4, width=2)
    assert m.conv1.weight.shape == (2, 2, 3, 3, 3) and m.fc.weight.shape == (4, 16)
    u = build_model("unet3d", in_channels=1, num_classes=2, depth=1, base_channels=2)
    assert isinstance(u, UNet3D) and u.head.weight.shape == (2, 2, 1, 1, 1)
    # the 3-D default has the reference widths and dropout
    d = build_model("smallcnn3d", in_channels=1, num_classes=2)
    convs = [mod for mod in d.features if isinstance(mod, nn.Conv3d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 128]
    assert sum(isinstance(mod, nn.MaxPool3d) for mod in d.features) == 2
    assert d.dropout.p == 0.3


# ---------------------------------------------------------------------------------- torch parity
@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_smallcnn3d_matches_torch(dtype):
    torch.manual_seed(0)
    widths = (4, 6, 8, 10)
    _match_torch(SmallCNN3D(2, 3, widths=widths), TSmallCNN3D(2, 3, widths=widths), (2, 2, 8, 8, 8), dtype)


@needs_torch
def test_smallcnn3d_default_matches_torch():
    torch.manual_seed(1)
    _match_torch(SmallCNN3D(1, 2), TSmallCNN3D(1, 2), (2, 1, 8, 8, 8), "float32")


@needs_torch
@pytest.mark.parametrize("variant,size,dtype", [("28", 16, "float32"), ("28", 8, "float64"),
                                                ("imagenet", 16, "float64")])
def test_resnet18_3d_matches_torch(variant, size, dtype):
    torch.manual_seed(0)
    _match_torch(ResNet18_3D(1, 2, variant=variant, width=4),
                 TResNet3D(TBasic3d, [2, 2, 2, 2], 1, 2, variant, width=4), (2, 1, size, size, size), dtype)


@needs_torch
def test_resnet50_3d_matches_torch():
    torch.manual_seed(0)
    _match_torch(ResNet50_3D(1, 3, width=2), TResNet3D(TBottle3d, [3, 4, 6, 3], 1, 3, width=2),
                 (2, 1, 8, 8, 8), "float64")


@needs_torch
@pytest.mark.parametrize("up,bn,dtype", [("transpose", True, "float32"), ("transpose", True, "float64"),
                                         ("interp", False, "float64")])
def test_unet3d_matches_torch(up, bn, dtype):
    torch.manual_seed(0)
    _match_torch(UNet3D(2, 3, depth=2, base_channels=2, batch_norm=bn, up=up),
                 TUNet3D(2, 3, 2, 2, bn, up), (2, 2, 8, 4, 8), dtype)
