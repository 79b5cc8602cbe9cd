"""Classification models: shapes, parameter counts and outputs against the same architectures in
PyTorch (built here with torchvision's names, so loading torch's state_dict also proves the keys match),
gradient flow, train/eval behaviour and the registry."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad import models, nn
from tinygrad_rad.models import MODELS, ResNet18, ResNet34, ResNet50, SmallCNN, build_model, vgg_small

try:
    import torch
    import torch.nn as tnn
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the test oracle) is not installed")


# ------------------------------------------------------------- reference architectures in PyTorch
if torch is not None:

    class TBasic(tnn.Module):
        expansion = 1

        def __init__(self, inp, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(inp, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TBottle(tnn.Module):
        expansion = 4

        def __init__(self, inp, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(inp, planes, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(planes * 4)
            self.relu = tnn.ReLU()
            self.downsample = downsample

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TResNet(tnn.Module):
        """torchvision.models.ResNet's structure (with a 3x3 stride-1 stem for variant '28')."""

        def __init__(self, block, layers, cin, ncls, variant):
            super().__init__()
            self.inplanes = 64
            if variant == "imagenet":
                self.conv1 = tnn.Conv2d(cin, 64, 7, 2, 3, bias=False)
                self.maxpool = tnn.MaxPool2d(3, 2, 1)
            else:
                self.conv1 = tnn.Conv2d(cin, 64, 3, 1, 1, bias=False)
                self.maxpool = tnn.Identity()
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU()
            self.layer1 = self._make(block, 64, layers[0])
            self.layer2 = self._make(block, 128, layers[1], 2)
            self.layer3 = self._make(block, 256, layers[2], 2)
            self.layer4 = self._make(block, 512, layers[3], 2)
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512 * block.expansion, ncls)

        def _make(self, block, planes, n, stride=1):
            ds = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                out = planes * block.expansion
                ds = tnn.Sequential(tnn.Conv2d(self.inplanes, out, 1, stride, bias=False),
                                    tnn.BatchNorm2d(out))
            layers = [block(self.inplanes, planes, stride, ds)]
            self.inplanes = planes * block.expansion
            layers += [block(self.inplanes, planes) for _ in range(1, n)]
            return tnn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    class TSmallCNN(tnn.Module):
        def __init__(self, cin, ncls, p=0.3):
            super().__init__()

            def cbr(a, b):
                return [tnn.Conv2d(a, b, 3, padding=1, bias=False), tnn.BatchNorm2d(b), tnn.ReLU()]

            self.features = tnn.Sequential(*cbr(cin, 32), *cbr(32, 64), tnn.MaxPool2d(2), *cbr(64, 128),
                                           tnn.MaxPool2d(2))
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.dropout = tnn.Dropout(p)
            self.fc = tnn.Linear(128, ncls)

        def forward(self, x):
            return self.fc(self.dropout(torch.flatten(self.avgpool(self.features(x)), 1)))

    def t_vgg_small(cin, ncls):
        layers, c = [], cin
        for v in [32, "M", 64, "M", 128, 128, "M", 256, 256, "M"]:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                layers += [tnn.Conv2d(c, v, 3, padding=1), tnn.BatchNorm2d(v), tnn.ReLU()]
                c = v
        m = tnn.Module()
        m.features = tnn.Sequential(*layers)
        m.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        m.classifier = tnn.Sequential(tnn.Linear(256, 256), tnn.ReLU(), tnn.Dropout(0.5),
                                      tnn.Linear(256, 256), tnn.ReLU(), tnn.Dropout(0.5),
                                      tnn.Linear(256, ncls))
        m.forward = lambda x: m.classifier(torch.flatten(m.avgpool(m.features(x)), 1))
        return m


def _count(m) -> int:
    return sum(p.numel() for p in m.parameters())


def _match_torch(ours, theirs, x, train=False, tol=1e-9):
    """Same keys, same parameter count, same output (float64) after loading torch's weights."""
    theirs.double()
    ours.double()
    tsd = theirs.state_dict()
    assert list(ours.state_dict()) == list(tsd)
    assert _count(ours) == _count(theirs)
    rng = np.random.default_rng(0)
    with torch.no_grad():  # randomise BN stats/affine so that eval mode is a real test
        for k, v in tsd.items():
            if k.endswith(("running_mean", "bn1.bias", "bn2.bias")):
                v.copy_(torch.tensor(rng.normal(0, 0.1, v.shape)))
            elif k.endswith("running_var"):
                v.copy_(torch.tensor(rng.uniform(0.5, 1.5, v.shape)))
    ours.load_state_dict({k: v.numpy() for k, v in tsd.items()})
    ours.train(train)
    theirs.train(train)
    out = ours(tr.tensor(x, dtype=tr.float64))
    ref = theirs(torch.tensor(x, dtype=torch.float64))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=tol, atol=tol)
    if train:
        for (k, b), tb in zip(ours.named_buffers(), theirs.buffers()):
            np.testing.assert_allclose(b.numpy(), tb.numpy(), rtol=tol, atol=tol, err_msg=k)


# -------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("size", [28, 16, 9])
def test_smallcnn_shapes(size):
    m = SmallCNN(in_channels=3, num_classes=5)
    assert m(tr.randn(2, 3, size, size)).shape == (2, 5)
    assert models.SimpleCNN is SmallCNN


def test_resnet_and_vgg_shapes():
    m = ResNet18(in_channels=1, num_classes=4)  # variant "28"
    for size in (28, 12):
        assert m(tr.randn(2, 1, size, size)).shape == (2, 4)
    assert ResNet34(1, 3)(tr.randn(2, 1, 8, 8)).shape == (2, 3)
    for size in (28, 16):
        assert vgg_small(1, 7)(tr.randn(2, 1, size, size)).shape == (2, 7)


@pytest.mark.parametrize("fn,expected", [(ResNet18, 11_689_512), (ResNet34, 21_797_672),
                                         (ResNet50, 25_557_032)])
def test_published_parameter_counts(fn, expected):
    """torchvision's resnet18/34/50 (3 channels, 1000 classes) have these many parameters."""
    m = fn(3, 1000, variant="imagenet")
    assert m.num_parameters() == expected
    if fn is ResNet50:  # the imagenet stem (7x7 stride 2 + max-pool) with Bottleneck blocks, batch 1 in eval
        assert m.eval()(tr.randn(1, 3, 32, 32)).shape == (1, 1000)


@needs_torch
def test_smallcnn_matches_torch():
    tr.manual_seed(0)
    torch.manual_seed(0)
    x = np.random.default_rng(1).standard_normal((3, 2, 12, 12))
    _match_torch(SmallCNN(2, 4), TSmallCNN(2, 4), x)


@needs_torch
def test_vgg_small_matches_torch():
    x = np.random.default_rng(1).standard_normal((2, 1, 16, 16))
    _match_torch(vgg_small(1, 3), t_vgg_small(1, 3), x)


@needs_torch
@pytest.mark.parametrize("variant,size", [("28", 12), ("imagenet", 16)])
def test_resnet18_matches_torch(variant, size):
    x = np.random.default_rng(2).standard_normal((2, 3, size, size))
    ours, theirs = ResNet18(3, 5, variant=variant), TResNet(TBasic, [2, 2, 2, 2], 3, 5, variant)
    _match_torch(ours, theirs, x)
    if variant == "28":  # train mode: batch statistics and running-stat updates
        _match_torch(ours, theirs, x, train=True)


@needs_torch
def test_resnet50_matches_torch():
    x = np.random.default_rng(3).standard_normal((1, 1, 8, 8))
    _match_torch(ResNet50(1, 2), TResNet(TBottle, [3, 4, 6, 3], 1, 2, "28"), x, tol=1e-8)


@pytest.mark.parametrize("name", ["smallcnn", "resnet18", "vgg"])
def test_gradients_reach_every_parameter(name):
    m = build_model(name, in_channels=1, num_classes=3)
    x = tr.randn(2, 1, 16, 16)
    y = tr.tensor([0, 2])
    nn.CrossEntropyLoss()(m(x), y).backward()
    for k, p in m.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, k
        assert np.isfinite(p.grad.numpy()).all(), k
        assert np.abs(p.grad.numpy()).sum() > 0, k


def test_train_eval_differences():
    m = SmallCNN(1, 2, dropout=0.5)
    x = tr.randn(4, 1, 8, 8)
    rm = m.features[1].running_mean.numpy().copy()
    a, b = m(x).numpy(), m(x).numpy()
    assert not np.allclose(a, b)  # dropout (and BN batch stats) in train mode
    assert not np.allclose(m.features[1].running_mean.numpy(), rm)
    assert int(m.features[1].num_batches_tracked.item()) == 2
    m.eval()
    rm = m.features[1].running_mean.numpy().copy()
    c, d = m(x).numpy(), m(x[:1]).numpy()
    np.testing.assert_allclose(c[:1], d, rtol=1e-5, atol=1e-6)  # eval: per-sample, deterministic
    np.testing.assert_array_equal(m.features[1].running_mean.numpy(), rm)
    assert int(m.features[1].num_batches_tracked.item()) == 2


def test_registry_and_errors():
    names = {"smallcnn", "simplecnn", "resnet18", "resnet18_imagenet", "resnet34", "resnet50", "vgg"}
    assert names <= set(MODELS)
    m = build_model("resnet18_imagenet", in_channels=1, num_classes=2)
    assert m.variant == "imagenet" and m.conv1.weight.shape == (64, 1, 7, 7)
    assert build_model("ResNet18", 1, 2).conv1.weight.shape == (64, 1, 3, 3)
    with pytest.raises(ValueError, match="unknown model 'resnet9'"):
        build_model("resnet9", 1, 2)
    with pytest.raises(ValueError, match="in_channels=1"):
        SmallCNN(1, 2)(tr.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="variant"):
        ResNet18(1, 2, variant="cifar")
