"""Classification CNNs: ``SmallCNN``, ResNet-18/34/50 and small VGGs, plus the ``MODELS`` registry.

    >>> from tinygrad_rad.models import build_model
    >>> net = build_model("resnet18", in_channels=1, num_classes=2)        # MedMNIST form (28x28)
    >>> net(tinygrad_rad.randn(4, 1, 28, 28)).shape
    (4, 2)

ResNets and VGGs use torchvision's module names and initialisations, so ``state_dict`` keys map
key-for-key onto ``torchvision.models.resnet18(num_classes=...)`` (with ``variant="imagenet"`` and
``in_channels=3``; the MedMNIST variant only changes the shape of ``conv1.weight``).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import nn
from ..nn import init
from ..tensor import Tensor

__all__ = [
    "SmallCNN", "SimpleCNN", "BasicBlock", "Bottleneck", "ResNet", "ResNet18", "ResNet34", "ResNet50",
    "resnet18", "resnet34", "resnet50", "VGG", "vgg_small", "vgg11", "MODELS", "build_model",
    "register_model",
]


def _conv_bn_relu(cin: int, cout: int) -> list:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


# -------------------------------------------------------------------------------------- SmallCNN
class SmallCNN(nn.Module):
    """The benchmark network: three 3x3 conv-BN-ReLU blocks (32, 64, 128 channels) with 2x2 max-pools
    after the second and third, global average pooling, dropout and a linear classifier.

    Convs have no bias (the BN that follows has one). Works for any input size >= 4x4. ``widths``
    changes the three widths (``"smallcnn_wide"``: 48, 96, 192).

    >>> SmallCNN(in_channels=1, num_classes=2)(tinygrad_rad.randn(8, 1, 28, 28)).shape
    (8, 2)
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.3,
                 widths: tuple = (32, 64, 128)) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"SmallCNN: widths must list 3 widths, got {widths!r}")
        w1, w2, w3 = (int(w) for w in widths)
        self.in_channels, self.num_classes = in_channels, num_classes
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, w1),
            *_conv_bn_relu(w1, w2),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w2, w3),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x)
        x = self.avgpool(self.features(x)).flatten(1)
        return self.fc(self.dropout(x))


SimpleCNN = SmallCNN


def check_input(model: nn.Module, x: Tensor, ndim: int = 4) -> None:
    """Refuse an input that is not ``ndim``-D (4: images, 5: volumes) or has the wrong channel count."""
    if x.ndim != ndim:
        axes = "(N, C, H, W)" if ndim == 4 else "(N, C, D, H, W)"
        raise ValueError(f"{type(model).__name__}: expected a {ndim}-D input {axes}, got shape {x.shape}")
    if x.shape[1] != model.in_channels:
        raise ValueError(
            f"{type(model).__name__}: built for in_channels={model.in_channels}, got input of shape {x.shape}"
        )


# ---------------------------------------------------------------------------------------- ResNet
# The layer types are class attributes: the 3-D twins (classification3d.py: BasicBlock3d, Bottleneck3d,
# ResNet3D) are these classes with Conv3d / BatchNorm3d / MaxPool3d / AdaptiveAvgPool3d.
def _conv3x3(conv: type, cin: int, cout: int, stride: int = 1) -> nn.Module:
    return conv(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(conv: type, cin: int, cout: int, stride: int = 1) -> nn.Module:
    return conv(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity (or 1x1-conv) shortcut: y = relu(bn2(conv2(relu(bn1(conv1 x)))) + x)."""

    expansion = 1
    Conv, BatchNorm = nn.Conv2d, nn.BatchNorm2d

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(self.Conv, inplanes, planes, stride)
        self.bn1 = self.BatchNorm(planes)
        self.relu = nn.ReLU()
        self.conv2 = _conv3x3(self.Conv, planes, planes)
        self.bn2 = self.BatchNorm(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        # relu(bn1(conv1 x)) and relu(bn2(conv2 out) + identity); nn.conv_bn fuses each at inference
        out = nn.conv_bn(self.conv1, self.bn1, x, self.relu)
        identity = x if self.downsample is None else self.downsample(x)
        return nn.conv_bn(self.conv2, self.bn2, out, self.relu, residual=identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride, as in torchvision's ResNet v1.5), 1x1 expand by 4, plus shortcut."""

    expansion = 4
    Conv, BatchNorm = nn.Conv2d, nn.BatchNorm2d

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(self.Conv, inplanes, planes)
        self.bn1 = self.BatchNorm(planes)
        self.conv2 = _conv3x3(self.Conv, planes, planes, stride)
        self.bn2 = self.BatchNorm(planes)
        self.conv3 = _conv1x1(self.Conv, planes, planes * self.expansion)
        self.bn3 = self.BatchNorm(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = nn.conv_bn(self.conv1, self.bn1, x, self.relu)  # relu(bn1(conv1 x)); fused at inference
        out = nn.conv_bn(self.conv2, self.bn2, out, self.relu)
        identity = x if self.downsample is None else self.downsample(x)
        return nn.conv_bn(self.conv3, self.bn3, out, self.relu, residual=identity)


class ResNet(nn.Module):
    """ResNet (He et al., 2016) with torchvision's layout: ``conv1 bn1 relu maxpool layer1..4 avgpool fc``.

    ``variant="imagenet"``: 7x7 stride-2 stem + 3x3 stride-2 max-pool (for ~224 px inputs).
    ``variant="28"``: MedMNIST's form for 28x28 inputs: 3x3 stride-1 stem and no max-pool
    (``maxpool`` is an ``Identity``, so the state_dict keys are unchanged). ``width`` is the stem
    width (torchvision: 64; the stages use width, 2x, 4x, 8x).
    """

    Conv, BatchNorm, MaxPool, AdaptiveAvgPool = nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d
    input_ndim = 4

    def __init__(self, block: type, layers: list, in_channels: int = 3, num_classes: int = 1000,
                 variant: str = "imagenet", zero_init_residual: bool = False, width: int = 64) -> None:
        super().__init__()
        if variant not in ("imagenet", "28"):
            raise ValueError(f"{type(self).__name__}: variant must be 'imagenet' or '28', got {variant!r}")
        self.in_channels, self.num_classes, self.variant = in_channels, num_classes, variant
        self.inplanes = width
        if variant == "imagenet":
            self.conv1 = self.Conv(in_channels, width, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = self.Conv(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = self.BatchNorm(width)
        self.relu = nn.ReLU()
        self.maxpool = self.MaxPool(3, stride=2, padding=1) if variant == "imagenet" else nn.Identity()
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = self.AdaptiveAvgPool((1,) * (self.input_ndim - 2))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, self.Conv):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, self.BatchNorm):
                init.ones_(m.weight)
                init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    init.zeros_(m.bn2.weight)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.Conv, self.inplanes, planes * block.expansion, stride),
                self.BatchNorm(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last conv feature map (N, 8 * width * expansion, h, w) — Grad-CAM's target is ``layer4``."""
        check_input(self, x, self.input_ndim)
        x = self.maxpool(nn.conv_bn(self.conv1, self.bn1, x, self.relu))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.forward_features(x)).flatten(1))


def ResNet18(in_channels: int = 3, num_classes: int = 1000, variant: str = "28", **kw) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]); 11.2M parameters with 1000 classes."""
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, num_classes, variant, **kw)


def ResNet34(in_channels: int = 3, num_classes: int = 1000, variant: str = "28", **kw) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3])."""
    return ResNet(BasicBlock, [3, 4, 6, 3], in_channels, num_classes, variant, **kw)


def ResNet50(in_channels: int = 3, num_classes: int = 1000, variant: str = "28", **kw) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3])."""
    return ResNet(Bottleneck, [3, 4, 6, 3], in_channels, num_classes, variant, **kw)


resnet18, resnet34, resnet50 = ResNet18, ResNet34, ResNet50


# ------------------------------------------------------------------------------------------- VGG
VGG_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-11
    "small": [32, "M", 64, "M", 128, 128, "M", 256, 256, "M"],  # VGG-11 at half width, 4 pools
}


class VGG(nn.Module):
    """VGG (Simonyan & Zisserman, 2015) with torchvision's names: ``features``, ``avgpool``, ``classifier``.

    ``cfg`` lists conv widths and ``"M"`` for 2x2 max-pools; ``pool_size`` is the adaptive average
    pool's output (torchvision: 7); ``hidden`` the classifier's width (torchvision: 4096).
    """

    def __init__(self, cfg: list, in_channels: int = 3, num_classes: int = 1000, batch_norm: bool = True,
                 pool_size: int = 7, hidden: int = 4096, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels, self.num_classes = in_channels, num_classes
        layers: list = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2))
                continue
            layers.append(nn.Conv2d(c, int(v), 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU())
            c = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(c * pool_size * pool_size, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, 0, 0.01)
                init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self, x)
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def vgg_small(in_channels: int = 1, num_classes: int = 2, batch_norm: bool = True,
              dropout: float = 0.5) -> VGG:
    """A VGG-11-style net sized for 28x28 inputs: widths 32-256, 4 max-pools, 1x1 pool, 256-wide head."""
    return VGG(VGG_CFGS["small"], in_channels, num_classes, batch_norm, pool_size=1, hidden=256,
               dropout=dropout)


def vgg11(in_channels: int = 3, num_classes: int = 1000, batch_norm: bool = False, **kw) -> VGG:
    """torchvision's VGG-11 (``vgg11`` / ``vgg11_bn``); needs inputs of at least 32x32."""
    return VGG(VGG_CFGS["A"], in_channels, num_classes, batch_norm, **kw)


# -------------------------------------------------------------------------------------- registry
def _resnet18_imagenet(in_channels: int = 3, num_classes: int = 1000, **kw) -> ResNet:
    kw.setdefault("variant", "imagenet")
    return ResNet18(in_channels, num_classes, **kw)


def _smallcnn_wide(in_channels: int = 1, num_classes: int = 2, **kw) -> SmallCNN:
    kw.setdefault("widths", (48, 96, 192))
    return SmallCNN(in_channels, num_classes, **kw)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "smallcnn": SmallCNN,
    "smallcnn_wide": _smallcnn_wide,
    "simplecnn": SimpleCNN,
    "resnet18": ResNet18,
    "resnet18_imagenet": _resnet18_imagenet,
    "resnet34": ResNet34,
    "resnet50": ResNet50,
    "vgg": vgg_small,
    "vgg_small": vgg_small,
    "vgg11": vgg11,
}


def register_model(name: str, fn: Callable[..., nn.Module]) -> None:
    """Add a constructor ``fn(in_channels=..., num_classes=..., **kw)`` to :data:`MODELS`."""
    MODELS[name.lower()] = fn


def build_model(name: str, in_channels: int, num_classes: int, **kw) -> nn.Module:
    """Build a registered model by name: ``build_model("resnet18", in_channels=1, num_classes=2)``."""
    key = name.lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[key](in_channels=in_channels, num_classes=num_classes, **kw)
