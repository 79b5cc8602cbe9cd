"""Neural-network layers (``Module`` subclasses that own parameters), ``nn.init``, ``nn.utils`` and
``nn.functional``.

    >>> from tinygrad_rad import nn
    >>> layer = nn.Linear(4, 2)
    >>> sum(p.numel() for p in layer.parameters())
    10
"""

from . import functional, init, utils  # noqa: F401
from .modules import (  # noqa: F401
    ELU,
    GELU,
    AdaptiveAvgPool2d,
    AdaptiveAvgPool3d,
    AdaptiveMaxPool3d,
    AvgPool2d,
    AvgPool3d,
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    BCEWithLogitsLoss,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose2d,
    ConvTranspose3d,
    CrossEntropyLoss,
    DiceBCELoss,
    DiceCELoss,
    DiceLoss,
    Dropout,
    Dropout2d,
    Flatten,
    FocalLoss,
    Hardsigmoid,
    Hardswish,
    Identity,
    L1Loss,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    MaxPool3d,
    MaxUnpool2d,
    Mish,
    Module,
    ModuleDict,
    ModuleList,
    MSELoss,
    NLLLoss,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    SmoothL1Loss,
    Softmax,
    Softplus,
    Tanh,
    TverskyLoss,
    Upsample,
    bn_relu,
)
