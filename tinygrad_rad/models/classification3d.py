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
from ..tensor import Tensor
from .classification import BasicBlock, Bottleneck, ResNet, check_input

__all__ = [
    "SmallCNN3D", "BasicBlock3d", "Bottleneck3d", "ResNet3D", "ResNet18_3D", "ResNet34_3D",
    "ResNet50_3D", "resnet18_3d", "resnet34_3d", "resnet50_3d",
]


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
        check_input(self, x, 5)
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.forward_features(x)).flatten(1)
        return self.fc(self.dropout(x))


# -------------------------------------------------------------------------------------- ResNet3D
class BasicBlock3d(BasicBlock):
    """Two 3x3x3 convs with an identity (or 1x1x1-conv) shortcut:
    y = relu(bn2(conv2(relu(bn1(conv1 x)))) + x)."""

    Conv, BatchNorm = nn.Conv3d, nn.BatchNorm3d


class Bottleneck3d(Bottleneck):
    """1x1x1 reduce, 3x3x3 (with the stride, as torchvision's ResNet v1.5), 1x1x1 expand by 4, + shortcut."""

    Conv, BatchNorm = nn.Conv3d, nn.BatchNorm3d


class ResNet3D(ResNet):
    """3-D ResNet with torchvision's layout: ``conv1 bn1 relu maxpool layer1..4 avgpool fc`` (the 2-D
    ``ResNet`` with its layers' 3-D twins).

    ``variant="28"`` (default; MedMNIST 3D, 28^3 or 64^3 inputs): 3x3x3 stride-1 stem, no max-pool
    (``maxpool`` is an ``Identity``). ``variant="imagenet"``: 7x7x7 stride-2 stem + 3x3x3 stride-2
    max-pool (for large volumes). ``width`` is the stem width (64 in the paper; the stages use
    width, 2x, 4x, 8x). Initialisation as torchvision (Kaiming-normal fan-out convs, BN = 1, 0).
    ``forward_features`` gives the last conv feature map (N, 8 * width * expansion, d, h, w), Grad-CAM's
    target ``layer4``.
    """

    Conv, BatchNorm, MaxPool, AdaptiveAvgPool = nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d, nn.AdaptiveAvgPool3d
    input_ndim = 5

    def __init__(self, block: type, layers: list, in_channels: int = 1, num_classes: int = 2,
                 variant: str = "28", zero_init_residual: bool = False, width: int = 64) -> None:
        super().__init__(block, layers, in_channels, num_classes, variant, zero_init_residual, width)


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
