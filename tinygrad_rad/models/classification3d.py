"""3-D classification CNNs for volumes (N, C, D, H, W): ``SmallCNN3D`` and ResNet-18/50 + 3D.

    >>> from tinygrad_rad.models import build_model
    >>> net = build_model("resnet18_3d", in_channels=1, num_classes=2)    # MedMNIST 3D form (28^3)
    >>> net(tinygrad_rad.randn(2, 1, 28, 28, 28)).shape
    (2, 2)

``ResNet3D`` is MedMNIST v2's "ResNet-18 + 3D" / "ResNet-50 + 3D": torchvision's ResNet with every
2-D layer replaced by its 3-D twin (3x3x3 convs, 1x1x1 shortcuts, 3-D batch norm and pooling), and
for 28^3 inputs (``variant="28"``) a 3x3x3 stride-1 stem without the max-pool. The module names are
torchvision's (``conv1 bn1 layer1..4 fc``), so a PyTorch port with the same layout loads key for key.
"""

from __future__ import annotations

from .. import nn
from ..nn import init
from ..tensor import Tensor

__all__ = [
    "SmallCNN3D", "BasicBlock3d", "Bottleneck3d", "ResNet3D", "ResNet18_3D", "ResNet34_3D",
    "ResNet50_3D", "resnet18_3d", "resnet34_3d", "resnet50_3d",
]


def _check_input(model: nn.Module, x: Tensor) -> None:
    name = type(model).__name__
    if x.ndim != 5:
        raise ValueError(f"{name}: expected a 5-D input (N, C, D, H, W), got shape {x.shape}")
    if x.shape[1] != model.in_channels:
        raise ValueError(f"{name}: built for in_channels={model.in_channels}, got input of shape {x.shape}")


def _conv_bn_relu(cin: int, cout: int) -> list:
    return [nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU()]


# ------------------------------------------------------------------------------------ SmallCNN3D
class SmallCNN3D(nn.Module):
    """The 3-D default: four 3x3x3 conv-BN-ReLU stages (16, 32, 64, 128 channels) with a 2x2x2 max-pool
    after the first and the second, global average pooling, dropout and a linear classifier.

    Convs have no bias (the BN that follows has one); PyTorch's default initialisation. Works for any
    input of at least 4x4x4 voxels. ``widths`` changes the four stage widths.

    >>> SmallCNN3D(in_channels=1, num_classes=2)(tinygrad_rad.randn(2, 1, 28, 28, 28)).shape
    (2, 2)
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.3,
                 widths: tuple = (16, 32, 64, 128)) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"SmallCNN3D: widths must list 4 stage widths, got {widths!r}")
        self.in_channels, self.num_classes = in_channels, num_classes
        w1, w2, w3, w4 = (int(w) for w in widths)
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, w1),
            nn.MaxPool3d(2),
            *_conv_bn_relu(w1, w2),
            nn.MaxPool3d(2),
            *_conv_bn_relu(w2, w3),
            *_conv_bn_relu(w3, w4),
        )
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(w4, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last conv feature map (N, 128, D/4, H/4, W/4) — the 3-D Grad-CAM target (``features``)."""
        _check_input(self, x)
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.forward_features(x)).flatten(1)
        return self.fc(self.dropout(x))


# -------------------------------------------------------------------------------------- ResNet3D
def _conv3x3x3(cin: int, cout: int, stride: int = 1):
    return nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1x1(cin: int, cout: int, stride: int = 1):
    return nn.Conv3d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock3d(nn.Module):
    """Two 3x3x3 convs with an identity (or 1x1x1-conv) shortcut:
    y = relu(bn2(conv2(relu(bn1(conv1 x)))) + x)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU()
        self.conv2 = _conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck3d(nn.Module):
    """1x1x1 reduce, 3x3x3 (with the stride, as torchvision's ResNet v1.5), 1x1x1 expand by 4, + shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3x3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = _conv1x1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet3D(nn.Module):
    """3-D ResNet with torchvision's layout: ``conv1 bn1 relu maxpool layer1..4 avgpool fc``.

    ``variant="28"`` (default; MedMNIST 3D, 28^3 or 64^3 inputs): 3x3x3 stride-1 stem, no max-pool
    (``maxpool`` is an ``Identity``). ``variant="imagenet"``: 7x7x7 stride-2 stem + 3x3x3 stride-2
    max-pool (for large volumes). ``width`` is the stem width (64 in the paper; the stages use
    width, 2x, 4x, 8x). Initialisation as torchvision (Kaiming-normal fan-out convs, BN = 1, 0).
    """

    def __init__(self, block: type, layers: list, in_channels: int = 1, num_classes: int = 2,
                 variant: str = "28", zero_init_residual: bool = False, width: int = 64) -> None:
        super().__init__()
        if variant not in ("imagenet", "28"):
            raise ValueError(f"ResNet3D: variant must be 'imagenet' or '28', got {variant!r}")
        self.in_channels, self.num_classes, self.variant = in_channels, num_classes, variant
        self.inplanes = width
        if variant == "imagenet":
            self.conv1 = nn.Conv3d(in_channels, width, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv3d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1) if variant == "imagenet" else nn.Identity()
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv3d):
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck3d):
                    init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock3d):
                    init.zeros_(m.bn2.weight)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm3d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last conv feature map (N, 8 * width * expansion, d, h, w) — Grad-CAM's target is ``layer4``."""
        _check_input(self, x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.forward_features(x)).flatten(1))


def ResNet18_3D(in_channels: int = 1, num_classes: int = 2, variant: str = "28", **kw) -> ResNet3D:
    """ResNet-18 + 3D (BasicBlock3d, [2, 2, 2, 2]); 33.1M parameters (1 channel, 2 classes)."""
    return ResNet3D(BasicBlock3d, [2, 2, 2, 2], in_channels, num_classes, variant, **kw)


def ResNet34_3D(in_channels: int = 1, num_classes: int = 2, variant: str = "28", **kw) -> ResNet3D:
    """ResNet-34 + 3D (BasicBlock3d, [3, 4, 6, 3])."""
    return ResNet3D(BasicBlock3d, [3, 4, 6, 3], in_channels, num_classes, variant, **kw)


def ResNet50_3D(in_channels: int = 1, num_classes: int = 2, variant: str = "28", **kw) -> ResNet3D:
    """ResNet-50 + 3D (Bottleneck3d, [3, 4, 6, 3])."""
    return ResNet3D(Bottleneck3d, [3, 4, 6, 3], in_channels, num_classes, variant, **kw)


resnet18_3d, resnet34_3d, resnet50_3d = ResNet18_3D, ResNet34_3D, ResNet50_3D
