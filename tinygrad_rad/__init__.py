"""tinygrad_rad: a from-scratch deep-learning framework for radiology CNNs.

    >>> import tinygrad_rad as tr
    >>> x = tr.randn(4, 3, requires_grad=True)
    >>> (x.relu() ** 2).mean().backward()
    >>> x.grad.shape
    (4, 3)
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import cuda, ops, viz
from .autograd import Function, enable_grad, is_grad_enabled, no_grad, trace
from .creation import (
    arange,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .device import get_backend, set_backend
from .dtypes import bool_, float16, float32, float64, int32, int64, uint8
from .gradcheck import GradcheckError, gradcheck
from .random import get_rng_state, manual_seed, set_rng_state
from .tensor import Tensor, cat, chunk, concatenate, split, stack, where

bool = bool_  # noqa: A001  (PyTorch spells it tinygrad_rad.bool)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    return a @ b


def maximum(a: Tensor, b: Tensor) -> Tensor:
    return a.maximum(b)


def minimum(a: Tensor, b: Tensor) -> Tensor:
    return a.minimum(b)


def clamp(input: Tensor, min=None, max=None) -> Tensor:  # noqa: A002
    return input.clamp(min, max)


def exp(x: Tensor) -> Tensor:
    return x.exp()


def log(x: Tensor) -> Tensor:
    return x.log()


def sqrt(x: Tensor) -> Tensor:
    return x.sqrt()


def abs(x: Tensor) -> Tensor:  # noqa: A001
    return x.abs()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def relu(x: Tensor) -> Tensor:
    return x.relu()


def softmax(x: Tensor, dim: int) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return x.log_softmax(dim)


def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    return x.logsumexp(dim, keepdim)


def sum(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return x.sum(dim, keepdim)


def mean(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.mean(dim, keepdim)


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.argmax(dim, keepdim)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return x.flatten(start_dim, end_dim)


def reshape(x: Tensor, shape) -> Tensor:
    return x.reshape(shape)


def permute(x: Tensor, dims) -> Tensor:
    return x.permute(*dims)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    return x.transpose(dim0, dim1)


def squeeze(x: Tensor, dim=None) -> Tensor:
    return x.squeeze(dim)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    return x.unsqueeze(dim)


def is_tensor(x) -> object:
    return isinstance(x, Tensor)

__all__ = [
    "cuda",
    "ops",
    "viz",
    "Function",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "trace",
    "get_backend",
    "set_backend",
    "bool_",
    "float16",
    "float32",
    "float64",
    "int32",
    "int64",
    "uint8",
    "GradcheckError",
    "gradcheck",
    "get_rng_state",
    "manual_seed",
    "set_rng_state",
    "Tensor",
    "arange",
    "cat",
    "chunk",
    "concatenate",
    "empty",
    "empty_like",
    "eye",
    "from_numpy",
    "full",
    "full_like",
    "linspace",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "split",
    "stack",
    "tensor",
    "where",
    "zeros",
    "zeros_like",
    "matmul",
    "maximum",
    "minimum",
    "clamp",
    "exp",
    "log",
    "sqrt",
    "abs",
    "sigmoid",
    "tanh",
    "relu",
    "softmax",
    "log_softmax",
    "logsumexp",
    "sum",
    "mean",
    "argmax",
    "flatten",
    "reshape",
    "permute",
    "transpose",
    "squeeze",
    "unsqueeze",
    "is_tensor",
    "bool",
    "__version__",
]
