"""Ready-made networks: classification CNNs (``SmallCNN``, ResNets, VGGs) and, when present, the
segmentation/detection models; ``build_model(name, in_channels, num_classes)`` builds any of them.

    >>> from tinygrad_rad.models import build_model, MODELS
    >>> net = build_model("smallcnn", in_channels=1, num_classes=2)
"""

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

# NOTE: the segmentation and detection models live in their own modules; import them only if present
try:
    from . import unet  # noqa: F401
    from .unet import *  # noqa: F401,F403
except ImportError:  # pragma: no cover
    pass
try:
    from . import detection  # noqa: F401
    from .detection import *  # noqa: F401,F403
except ImportError:  # pragma: no cover
    pass
