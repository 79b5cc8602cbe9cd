"""The layers, one file per family; every name is re-exported here and by :mod:`tinygrad_rad.nn`.

    >>> import tinygrad_rad as tr
    >>> from tinygrad_rad import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
    ...                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    >>> net(tr.randn(4, 1, 28, 28)).shape
    (4, 2)

Every layer calls :mod:`tinygrad_rad.nn.functional`; no layer implements an op itself. Parameter
names, argument names and default initialisations follow PyTorch, so ``state_dict`` keys match.

| file | layers |
| --- | --- |
| module.py | Parameter, Module |
| containers.py | Sequential, ModuleList, ModuleDict, bn_relu, conv_bn (fused BatchNorm + ReLU, Conv + BN) |
| linear.py | Identity, Linear |
| conv.py | Conv1d, Conv2d, ConvTranspose2d |
| pool.py | MaxPool2d, AvgPool2d, MaxUnpool2d, AdaptiveAvgPool2d |
| norm.py | BatchNorm1d, BatchNorm2d |
| dropout.py | Dropout, Dropout2d |
| activation.py | ReLU, LeakyReLU, ELU, GELU, Sigmoid, Tanh, Softplus, Softmax, LogSoftmax, |
|  | SiLU, Mish, Hardsigmoid, Hardswish |
| upsampling.py | Upsample |
| conv3d.py | Conv3d, ConvTranspose3d |
| pool3d.py | MaxPool3d, AvgPool3d, AdaptiveAvgPool3d, AdaptiveMaxPool3d |
| norm3d.py | BatchNorm3d |
| flatten.py | Flatten |
| loss.py | CrossEntropyLoss, NLLLoss, BCEWithLogitsLoss, MSELoss, L1Loss, SmoothL1Loss, |
|  | DiceLoss, TverskyLoss, FocalLoss, DiceBCELoss, DiceCELoss |
"""

from .activation import (
    ELU,
    GELU,
    Hardsigmoid,
    Hardswish,
    LeakyReLU,
    LogSoftmax,
    Mish,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .containers import ModuleDict, ModuleList, Sequential, bn_relu, conv_bn
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .conv3d import Conv3d, ConvTranspose3d
from .dropout import Dropout, Dropout2d
from .flatten import Flatten
from .linear import Identity, Linear
from .loss import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    DiceBCELoss,
    DiceCELoss,
    DiceLoss,
    FocalLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
    TverskyLoss,
)
from .module import Module, Parameter
from .norm import BatchNorm1d, BatchNorm2d
from .norm3d import BatchNorm3d
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, MaxUnpool2d
from .pool3d import AdaptiveAvgPool3d, AdaptiveMaxPool3d, AvgPool3d, MaxPool3d
from .upsampling import Upsample

__all__ = [
    "Parameter", "Module", "Sequential", "ModuleList", "ModuleDict", "bn_relu", "conv_bn", "Identity",
    "Linear",
    "Conv2d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "Dropout", "Dropout2d", "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d", "Upsample", "Flatten", "ReLU", "LeakyReLU", "ELU", "GELU", "Sigmoid", "Tanh",
    "Softplus", "Softmax", "LogSoftmax", "CrossEntropyLoss", "BCEWithLogitsLoss", "NLLLoss", "MSELoss",
    "L1Loss", "SmoothL1Loss", "DiceLoss", "TverskyLoss", "FocalLoss", "DiceBCELoss", "DiceCELoss", "Conv1d",
    "MaxUnpool2d", "SiLU", "Mish", "Hardsigmoid", "Hardswish",
    "Conv3d", "ConvTranspose3d", "MaxPool3d", "AvgPool3d", "AdaptiveAvgPool3d", "AdaptiveMaxPool3d",
    "BatchNorm3d",
]
