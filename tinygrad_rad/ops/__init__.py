"""Every differentiable op of tinygrad_rad, one small ``Function`` class each, forward and backward side
by side with the math of each backward rule in a comment beside it.

    >>> from tinygrad_rad import ops
    >>> y = ops.Mul.apply(a, b)        # what ``a * b`` does (after broadcasting checks and dtype promotion)

==============  ===================================================================================
elementwise.py  Add Sub Mul Div Pow PowScalar Maximum Minimum Where Copy Cast ToDevice Neg Exp Log
                Sqrt Abs Sin Cos Log1p Expm1 Dropout; ``unbroadcast`` (the backward of broadcasting)
activation.py   Clamp Relu LeakyRelu Elu Sigmoid Tanh Gelu Softplus
reduce.py       Sum Max Min LogSumExp Softmax LogSoftmax CumSum
movement.py     Reshape Permute Expand GetItem Cat Pad; ``getitem`` and ``pad`` (tensor-level helpers)
matmul.py       MatMul; ``matmul`` (1-D operands as in NumPy/PyTorch)
conv.py         Conv2d ConvTranspose2d Conv3d ConvTranspose3d
pool.py         MaxPool2d AvgPool2d MaxPool3d AvgPool3d
norm.py         BatchNormTrain ChannelAffine
loss.py         SoftmaxCrossEntropy
==============  ===================================================================================

The heavy ops (matmul, relu, erf, conv, pooling, batch norm, softmax-cross-entropy) call the kernel
module of the tensor's device, ``tinygrad_rad.device.backend(device)``; the others are written once
against ``xp`` (NumPy or CuPy).
"""

from __future__ import annotations

from .activation import Clamp, Elu, Gelu, LeakyRelu, Relu, Sigmoid, Softplus, Tanh
from .conv import Conv2d, Conv3d, ConvTranspose2d, ConvTranspose3d
from .elementwise import (
    Abs,
    Add,
    Cast,
    Copy,
    Cos,
    Div,
    Dropout,
    Exp,
    Expm1,
    Log,
    Log1p,
    Maximum,
    Minimum,
    Mul,
    Neg,
    Pow,
    PowScalar,
    Sin,
    Sqrt,
    Sub,
    ToDevice,
    Where,
    unbroadcast,
)
from .loss import SoftmaxCrossEntropy
from .matmul import MatMul, matmul
from .movement import Cat, Expand, GetItem, Pad, Permute, Reshape, getitem, normalize_index, pad
from .norm import BatchNormTrain, ChannelAffine
from .pool import AvgPool2d, AvgPool3d, MaxPool2d, MaxPool3d
from .reduce import CumSum, LogSoftmax, LogSumExp, Max, Min, Softmax, Sum

__all__ = [
    "Abs", "Add", "AvgPool2d", "BatchNormTrain", "Cast", "Cat", "ChannelAffine", "Clamp", "Conv2d",
    "ConvTranspose2d", "Copy", "Cos", "CumSum", "Div", "Dropout", "Elu", "Exp", "Expand", "Expm1",
    "Gelu", "GetItem", "LeakyRelu", "Log", "Log1p", "LogSoftmax", "LogSumExp", "MatMul", "Max",
    "MaxPool2d", "Maximum", "Min", "Minimum", "Mul", "Neg", "Pad", "Permute", "Pow", "PowScalar", "Relu",
    "Reshape", "Sigmoid", "Sin", "Softmax", "SoftmaxCrossEntropy", "Softplus", "Sqrt", "Sub", "Sum",
    "Tanh", "ToDevice", "Where", "getitem", "matmul", "normalize_index", "pad", "unbroadcast",
    "Conv3d", "ConvTranspose3d", "MaxPool3d", "AvgPool3d",
]
