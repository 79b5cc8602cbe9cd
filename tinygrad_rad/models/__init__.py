"""Ready-made networks: classification CNNs (``SmallCNN``, ResNets, VGGs), the U-Net
(segmentation) and CenterNet (detection); their 3-D twins for volumes (``SmallCNN3D``, ``ResNet18_3D``,
``UNet3D``; names in ``MODELS_3D``); ``build_model(name, in_channels, num_classes)`` builds any of them.

    >>> from tinygrad_rad.models import build_model, MODELS
    >>> net = build_model("smallcnn", in_channels=1, num_classes=2)
"""

from . import detection, unet  # noqa: E402,F401
from .classification import (  # noqa: F401
    MODELS,
    VGG,
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNet18,
    ResNet34,
    ResNet50,
    SimpleCNN,
    SmallCNN,
    build_model,
    register_model,
    resnet18,
    resnet34,
    resnet50,
    vgg11,
    vgg_small,
)
from .classification3d import *  # noqa: E402,F401,F403
from .classification3d import ResNet18_3D, ResNet34_3D, ResNet50_3D, SmallCNN3D
from .detection import *  # noqa: E402,F401,F403
from .unet import *  # noqa: E402,F401,F403
from .unet3d import *  # noqa: E402,F401,F403
from .unet3d import UNet3D

# the 3-D models (input (N, C, D, H, W)); "smallcnn3d" is the 3-D default
MODELS_3D = {
    "smallcnn3d": SmallCNN3D,
    "resnet18_3d": ResNet18_3D,
    "resnet34_3d": ResNet34_3D,
    "resnet50_3d": ResNet50_3D,
    "unet3d": UNet3D,
}
MODELS.update(MODELS_3D)
