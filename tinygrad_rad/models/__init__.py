"""Ready-made networks: classification CNNs (``SmallCNN``, ResNets, VGGs), the U-Net
(segmentation) and CenterNet (detection); ``build_model(name, in_channels, num_classes)`` builds any of them.

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
from .detection import *  # noqa: E402,F401,F403
from .unet import *  # noqa: E402,F401,F403
