"""Every differentiable op of tinygrad_rad, one small ``Function`` class each, forward and backward side
by side with the math of each backward rule in a comment beside it.

    >>> from tinygrad_rad import ops
    >>> y = ops.Mul.apply(a, b)        # what ``a * b`` does (after broadcasting checks and dtype promotion)

==============  ===================================================================================
elementwise.py  Add Sub Mul Div Pow PowScalar Maximum Minimum Where Copy Cast ToDevice Neg Exp Log
                Sqrt Abs Sin Cos Tan Asin Acos Atan Atan2 Sinh Cosh Asinh Acosh Atanh Log1p Expm1 Erf
                RoundedDiv Fmod Remainder Tri Dropout; ``unbroadcast`` (the backward of broadcasting)
activation.py   Clamp Relu LeakyRelu Elu Sigmoid Tanh Gelu Softplus
reduce.py       Sum Prod Max Min LogSumExp Softmax LogSoftmax CumSum CumProd LogCumSumExp
movement.py     Reshape Permute Expand GetItem Cat Pad Roll Gather Scatter ScatterReduce; ``getitem``
                and ``pad`` (tensor-level helpers), ``along`` (the index of gather/scatter)
matmul.py       MatMul Einsum; ``matmul`` (1-D operands as in NumPy/PyTorch), ``einsum`` (ellipsis,
                broadcasting and implicit output rewritten to an explicit equation)
conv.py         Conv2d Conv2dAffineEval ConvTranspose2d Conv3d ConvTranspose3d
pool.py         MaxPool2d AvgPool2d MaxPool3d AvgPool3d
norm.py         BatchNormTrain BatchNormReLUTrain ChannelAffine
loss.py         SoftmaxCrossEntropy
==============  ===================================================================================

The heavy ops (matmul, relu, erf, conv, pooling, batch norm, softmax-cross-entropy) call the kernel
module of the tensor's device, ``tinygrad_rad.device.backend(device)``; the others are written once
against ``xp`` (NumPy or CuPy).
"""

from __future__ import annotations

from .activation import Clamp, Elu, Gelu, LeakyRelu, Relu, Sigmoid, Softplus, Tanh
from .conv import Conv2d, Conv2dAffineEval, Conv3d, ConvTranspose2d, ConvTranspose3d
from .elementwise import (
    Abs,
    Acos,
    Acosh,
    Add,
    Asin,
    Asinh,
    Atan,
    Atan2,
    Atanh,
    Cast,
    Copy,
    Cos,
    Cosh,
    Div,
    Dropout,
    Erf,
    Exp,
    Expm1,
    Fmod,
    IntegerDivisionByZero,
    Log,
    Log1p,
    Maximum,
    Minimum,
    Mul,
    Neg,
    Pow,
    PowScalar,
    Remainder,
    RoundedDiv,
    Sin,
    Sinh,
    Sqrt,
    Sub,
    Tan,
    ToDevice,
    Tri,
    Where,
    unbroadcast,
)
from .loss import SoftmaxCrossEntropy
from .matmul import Einsum, MatMul, einsum, matmul
from .movement import (
    Cat,
    Expand,
    Gather,
    GetItem,
    Pad,
    Permute,
    Reshape,
    Roll,
    Scatter,
    ScatterReduce,
    along,
    getitem,
    legacy_empty,
    normalize_index,
    pad,
)
from .norm import BatchNormReLUTrain, BatchNormTrain, ChannelAffine
from .pool import AvgPool2d, AvgPool3d, MaxPool2d, MaxPool3d, MaxUnpool2d
from .reduce import CumProd, CumSum, LogCumSumExp, LogSoftmax, LogSumExp, Max, Min, Prod, Softmax, Sum

__all__ = [
    "Abs", "Add", "AvgPool2d", "BatchNormReLUTrain", "BatchNormTrain", "Cast", "Cat", "ChannelAffine",
    "Clamp", "Conv2d", "Conv2dAffineEval", "ConvTranspose2d", "Copy", "Cos", "CumSum", "Div", "Dropout",
    "Elu",
    "Exp", "Expand",
    "Expm1",
    "Gelu", "GetItem", "LeakyRelu", "Log", "Log1p", "LogSoftmax", "LogSumExp", "MatMul", "Max",
    "MaxPool2d", "MaxUnpool2d", "Maximum", "Min", "Minimum", "Mul", "Neg", "Pad", "Permute", "Pow",
    "PowScalar", "Relu",
    "Reshape", "Sigmoid", "Sin", "Softmax", "SoftmaxCrossEntropy", "Softplus", "Sqrt", "Sub", "Sum",
    "Tanh", "ToDevice", "Where", "getitem", "matmul", "normalize_index", "pad", "unbroadcast",
    "Conv3d", "ConvTranspose3d", "MaxPool3d", "AvgPool3d",
    "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Cosh", "CumProd", "Einsum", "Fmod", "Gather",
    "IntegerDivisionByZero", "Prod", "Remainder", "Roll", "RoundedDiv", "Scatter", "ScatterReduce", "Sinh",
    "Tan", "Tri", "along", "einsum", "legacy_empty", "Atan2", "Erf", "LogCumSumExp",
]
