"""Stateless neural-network functions with PyTorch's names and argument names.

    >>> import tinygrad_rad.nn.functional as F
    >>> y = F.conv2d(x, w, bias=None, stride=1, padding=1)
    >>> loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..device import backend, xp_for
from ..random import get_generator
from ..tensor import Tensor, where
from ..tensor import stack as _stack
from .argcheck import check_float, pair
from .losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    centernet_focal_loss,
    cross_entropy,
    dice_bce_loss,
    dice_ce_loss,
    dice_loss,
    l1_loss,
    mse_loss,
    nll_loss,
    sigmoid_focal_loss,
    smooth_l1_loss,
    tversky_loss,
)
from .pooling import adaptive_matrix, avg_divisor_axis, ceil_extra, pool_out

__all__ = [
    "linear", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d", "interpolate", "batch_norm", "dropout", "cross_entropy", "nll_loss",
    "binary_cross_entropy_with_logits", "binary_cross_entropy", "mse_loss", "l1_loss", "smooth_l1_loss",
    "relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "softplus", "softmax", "log_softmax", "pad",
    "one_hot", "silu", "mish", "hardsigmoid", "hardswish", "conv1d", "max_unpool2d", "dice_loss",
    "tversky_loss", "dice_bce_loss", "dice_ce_loss", "sigmoid_focal_loss", "centernet_focal_loss",
]


# ------------------------------------------------------------------------------- activations
def relu(input: Tensor, inplace: bool = False) -> Tensor:
    return input.relu()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return input.leaky_relu(negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return input.elu(alpha)


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    return input.gelu(approximate)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return input.softplus(beta, threshold)


def softmax(input: Tensor, dim: int) -> Tensor:
    return input.softmax(dim)


def log_softmax(input: Tensor, dim: int) -> Tensor:
    return input.log_softmax(dim)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return input * input.sigmoid()


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return input * input.softplus().tanh()


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6: 0 for x <= -3, 1 for x >= 3, x / 6 + 1/2 between (gradient 0 at +-3, as PyTorch)."""
    return where(input <= -3.0, 0.0, where(input >= 3.0, 1.0, input * (1.0 / 6.0) + 0.5))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6: 0 for x <= -3, x for x >= 3 (PyTorch's gradient: 0 at -3, 1 at 3)."""
    return where(input <= -3.0, 0.0, where(input < 3.0, input * (input + 3.0) * (1.0 / 6.0), input))


def pad(input: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad with PyTorch's ordering ``(left, right, top, bottom, ...)`` from the last dim back; in
    'constant' mode a negative amount crops that side, as in PyTorch.

        >>> pad(x, (1, 1, -1, 0))   # one column of zeros left and right, the top row cut off
    """
    amounts = tuple(int(p) for p in pad)
    if mode != "constant" or min(amounts, default=0) >= 0:
        return ops.pad(input, amounts, mode=mode, value=value)
    if len(amounts) % 2 or len(amounts) // 2 > input.ndim:
        raise ValueError(f"pad: {amounts} must hold (before, after) pairs for at most {input.ndim} dims")
    crop = [slice(None)] * input.ndim
    for i in range(len(amounts) // 2):
        dim, lo, hi = input.ndim - 1 - i, amounts[2 * i], amounts[2 * i + 1]
        n = input.shape[dim]
        if min(lo, 0) + min(hi, 0) + n < 0:
            raise ValueError(
                f"pad: negative padding ({lo}, {hi}) of dim {dim} crops more than its size {n} (input shape "
                f"{input.shape}; narrow(): length must be non-negative.)"
            )
        crop[dim] = slice(max(-lo, 0), n - max(-hi, 0))
    return ops.pad(input[tuple(crop)], tuple(max(p, 0) for p in amounts), mode=mode, value=value)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    idx = tensor.numpy().astype(np.int64)
    n = int(idx.max()) + 1 if num_classes < 0 else num_classes
    return Tensor(np.eye(n, dtype=np.int64)[idx], device=tensor.device)


# -------------------------------------------------------------------------------------- layers
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x W^T + b, with W of shape (out_features, in_features)."""
    if input.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"linear: input has {input.shape[-1]} features (shape {input.shape}) but weight expects "
            f"{weight.shape[-1]} (shape {weight.shape})"
        )
    out = input @ weight.T
    return out + bias if bias is not None else out


def _conv_padding(padding, kernel, dilation, stride, fn):
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"{fn}: padding='same' needs stride 1, got {stride}")
            # NOTE: an even effective kernel needs one more pixel on the bottom/right (done by conv2d)
            tot = [d * (k - 1) for k, d in zip(kernel, dilation)]
            return tot[0] // 2, tot[1] // 2
        raise ValueError(f"{fn}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    return pair(padding, "padding")


def _check_conv_args(fn: str, stride, padding, dilation, groups) -> None:
    """PyTorch's checks (and wording) for convolution arguments, before any work is done."""
    if min(stride) < 1:
        raise ValueError(f"{fn}: non-positive stride is not supported (got stride {stride})")
    if min(padding) < 0:
        raise ValueError(f"{fn}: negative padding is not supported (got padding {padding})")
    if min(dilation) < 1:
        got = (f"[{dilation[0]}, {dilation[1]}]" if fn == "conv2d" else
               f"dilation_height: {dilation[0]}, dilation_width: {dilation[1]}")  # PyTorch's two wordings
        raise ValueError(f"{fn}: dilation should be greater than zero, but got {got}")
    if groups < 1:
        raise ValueError(f"{fn}: non-positive groups is not supported (got groups={groups})")


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-D cross-correlation over (N, C_in, L) with weight (C_out, C_in/groups, K): conv2d on a unit
    height axis, ``(N, C, 1, L) * (C_out, C_in/groups, 1, K)``.

        >>> conv1d(tinygrad_rad.randn(2, 3, 10), tinygrad_rad.randn(4, 3, 3), padding=1).shape
        (2, 4, 10)
    """
    check_float("conv1d", input=input, weight=weight, bias=bias)
    if input.ndim != 3:
        raise ValueError(f"conv1d: expected a 3-D input (N, C, L), got shape {input.shape}")
    if weight.ndim != 3:
        raise ValueError(f"conv1d: expected a 3-D weight (C_out, C_in/groups, K), got shape {weight.shape}")

    def single(v, name):
        v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        if len(v) != 1:
            raise ValueError(f"conv1d: {name} must be an int or a 1-tuple, got {v!r}")
        return int(v[0])

    stride, dilation = single(stride, "stride"), single(dilation, "dilation")
    pad2 = padding if isinstance(padding, str) else (0, single(padding, "padding"))
    n, c, length = input.shape
    out = conv2d(input.reshape(n, c, 1, length), weight.reshape(weight.shape[:2] + (1, weight.shape[2])),
                 bias, (1, stride), pad2, (1, dilation), groups)
    return out.reshape(out.shape[0], out.shape[1], out.shape[3])


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-D cross-correlation over an (N, C_in, H, W) input with weight (C_out, C_in/groups, kH, kW)."""
    check_float("conv2d", input=input, weight=weight, bias=bias)
    if input.ndim != 4:
        raise ValueError(f"conv2d: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError(
            f"conv2d: expected a 4-D weight (C_out, C_in/groups, kH, kW), got shape {weight.shape}"
        )
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    same = isinstance(padding, str) and padding == "same"
    padding = _conv_padding(padding, weight.shape[2:], dilation, stride, "conv2d")
    if same:  # PyTorch's asymmetric 'same': the odd pixel of padding goes to the bottom/right
        extra = [d * (k - 1) % 2 for k, d in zip(weight.shape[2:], dilation)]
        if any(extra):
            input = ops.pad(input, (0, extra[1], 0, extra[0]))
    _check_conv_args("conv2d", stride, padding, dilation, groups)
    cin = input.shape[1]
    if cin % groups or weight.shape[0] % groups:
        raise ValueError(
            f"conv2d: groups={groups} must divide in_channels={cin} and out_channels={weight.shape[0]}"
        )
    if weight.shape[1] * groups != cin:
        raise ValueError(
            f"conv2d: weight of shape {weight.shape} with groups={groups} expects input to have "
            f"{weight.shape[1] * groups} channels, but got {cin} channels (input shape {input.shape})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias shape {bias.shape} does not match out_channels={weight.shape[0]}")
    for i in (0, 1):
        eff = dilation[i] * (weight.shape[2 + i] - 1) + 1
        if input.shape[2 + i] + 2 * padding[i] < eff:
            padded = " x ".join(str(input.shape[2 + j] + 2 * padding[j]) for j in (0, 1))
            raise ValueError(
                f"conv2d: Calculated padded input size per channel: ({padded}). Kernel size: "
                f"({' x '.join(map(str, weight.shape[2:]))}). Kernel size can't be greater than actual "
                f"input size (input {input.shape} padded by {padding} is smaller than the kernel, "
                f"dilation {dilation})"
            )
    if input.dtype != weight.dtype:
        raise TypeError(f"conv2d: input dtype {input.dtype} and weight dtype {weight.dtype} differ")
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if bias is None:
        return ops.Conv2d.apply(input, weight, **args)
    return ops.Conv2d.apply(input, weight, bias, **args)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed convolution; weight has shape (C_in, C_out/groups, kH, kW) as in PyTorch."""
    check_float("conv_transpose2d", input=input, weight=weight, bias=bias)
    if input.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"conv_transpose2d: expected 4-D input and weight, got {input.shape} and {weight.shape}"
        )
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    output_padding, dilation = pair(output_padding, "output_padding"), pair(dilation, "dilation")
    _check_conv_args("conv_transpose2d", stride, padding, dilation, groups)
    if input.shape[1] != weight.shape[0]:
        raise ValueError(
            f"conv_transpose2d: weight of shape {weight.shape} expects {weight.shape[0]} input channels, "
            f"but got {input.shape[1]} channels (input shape {input.shape})"
        )
    if input.shape[1] % groups:
        raise ValueError(f"conv_transpose2d: groups={groups} must divide in_channels={input.shape[1]}")
    for i in (0, 1):
        if output_padding[i] >= max(stride[i], dilation[i]):
            raise ValueError(
                f"conv_transpose2d: output_padding {output_padding} must be smaller than stride or dilation"
            )
    size = [(input.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.shape[2 + i] - 1)
            + output_padding[i] + 1 for i in (0, 1)]
    if min(size) < 1:
        raise ValueError(
            f"conv_transpose2d: Given input size per channel: ({input.shape[2]} x {input.shape[3]}). "
            f"Calculated output size per channel: ({size[0]} x {size[1]}). Output size is too small"
        )
    args = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
                groups=groups)
    if bias is None:
        return ops.ConvTranspose2d.apply(input, weight, **args)
    return ops.ConvTranspose2d.apply(input, weight, bias, **args)


def _pool_args(fn, input, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    """kernel, stride, padding, dilation as pairs, checked up front with PyTorch's messages."""
    if input.ndim != 4:
        raise ValueError(f"{fn}: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    k = pair(kernel_size, "kernel_size")
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    s = k if no_stride else pair(stride, "stride")
    p, d = pair(padding, "padding"), pair(dilation, "dilation")
    if min(k) < 1:
        raise ValueError(f"{fn}: kernel size should be greater than zero, but got kH: {k[0]} kW: {k[1]}")
    if 0 in s:
        raise ValueError(f"{fn}: stride should not be zero")
    if min(s) < 0:
        raise ValueError(f"{fn}: stride should be greater than zero, but got dH: {s[0]} dW: {s[1]}")
    if min(d) < 1:
        raise ValueError(
            f"{fn}: dilation should be greater than zero, but got dilationH: {d[0]} dilationW: {d[1]}"
        )
    if min(p) < 0:
        raise ValueError(f"{fn}: pad must be non-negative, but got pad: {min(p)}")
    for i in (0, 1):
        eff = d[i] * (k[i] - 1) + 1
        if p[i] * 2 > eff:
            raise ValueError(
                f"{fn}: pad should be at most half of effective kernel size, but got pad={p[i]}, "
                f"kernel_size={k[i]} and dilation={d[i]}"
            )
    out = [pool_out(input.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in (0, 1)]
    if min(out) < 1:
        n, c, h, w = input.shape
        raise ValueError(
            f"{fn}: Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{out[0]}x{out[1]}). "
            f"Output size is too small (kernel {k}, stride {s}, padding {p}, dilation {d})"
        )
    return k, s, p, d


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """Max over each (dilated) window; ``ceil_mode`` keeps the partial windows at the bottom/right.

    ``return_indices=True`` also returns, as in PyTorch, each max's flat index ``h * W + w`` in its
    input plane (int64). Integer input (no gradient) is pooled exactly, as in PyTorch; bool is refused.
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"max_pool2d: input must be a Tensor, got {type(input).__name__}")
    dt = np.dtype(input.dtype)
    if dt.kind == "b":
        raise NotImplementedError('max_pool2d: "max_pool2d" not implemented for \'Bool\'')
    if dt.kind not in "iu":
        check_float("max_pool2d", input=input)
    k, s, p, d = _pool_args("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    width = input.shape[3]
    eh, ew = ((ceil_extra(input.shape[2 + i], k[i], s[i], p[i], d[i]) for i in (0, 1)) if ceil_mode
              else (0, 0))
    if dt.kind in "iu":
        out, win = _max_pool_int(input, k, s, p, d, eh, ew)
    else:
        if eh or ew:  # pad with -inf: a padded element is never a window's max
            input = ops.pad(input, (0, ew, 0, eh), value=float("-inf"))
        out = ops.MaxPool2d.apply(input, kernel=k, stride=s, padding=p, dilation=d)
        if not return_indices:
            return out
        win = out._ctx.idx if out._ctx is not None else backend(input.device).max_pool2d_forward(
            input.data, k, s, p, d)[1]
    if not return_indices:
        return out
    # each argmax's position u * kW + v inside its window becomes h * W + w in the input plane
    xp = xp_for(input.device)
    ho, wo = out.shape[2:]
    rows = xp.arange(ho).reshape(-1, 1) * s[0] - p[0] + (win // k[1]) * d[0]
    cols = xp.arange(wo).reshape(1, -1) * s[1] - p[1] + (win % k[1]) * d[1]
    return out, Tensor._wrap((rows * width + cols).astype(np.int64), device=input.device)


def _max_pool_int(input: Tensor, k, s, p, d, eh: int, ew: int) -> tuple:
    """Integer max pooling on the array (integers carry no gradient): windows as a strided view of the
    padded input; padded cells never count (a padding value could tie with the data). Returns (output
    Tensor, each max's position u * kW + v in its window, the first one on ties as in PyTorch)."""
    xp = xp_for(input.device)
    pads = ((0, 0), (0, 0), (p[0], p[0] + eh), (p[1], p[1] + ew))
    x = xp.pad(input.data, pads)
    inside = xp.pad(xp.ones(input.shape[2:], dtype=bool), pads[2:])[None, None]
    eff = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)

    def windows(a):  # (N, C, oh, ow, kH * kW)
        v = xp.lib.stride_tricks.sliding_window_view(a, eff, axis=(2, 3))
        v = v[:, :, ::s[0], ::s[1], ::d[0], ::d[1]]
        return v.reshape(v.shape[:4] + (-1,))

    vals, valid = windows(x), windows(inside)
    out = xp.where(valid, vals, np.iinfo(x.dtype).min).max(axis=-1)
    win = ((vals == out[..., None]) & valid).argmax(axis=-1)
    return Tensor._wrap(xp.ascontiguousarray(out), device=input.device), win


def max_unpool2d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0,
                 output_size=None) -> Tensor:
    """The inverse of ``max_pool2d(..., return_indices=True)``: each value goes back to its flat index
    ``h * W + w`` in a zero plane of size ``(h_in - 1) * stride - 2 * padding + kernel`` (or
    ``output_size``); the gradient gathers at the same indices.

        >>> y, idx = max_pool2d(x, 2, return_indices=True)
        >>> max_unpool2d(y, idx, 2).shape == x.shape
        True
    """
    check_float("max_unpool2d", input=input)
    if input.ndim != 4:
        raise ValueError(f"max_unpool2d: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    if not isinstance(indices, Tensor) or np.dtype(indices.dtype).kind not in "iu":
        raise TypeError(f"max_unpool2d: indices must be an integer Tensor (from max_pool2d), got {indices!r}")
    if indices.shape != input.shape:
        raise ValueError(
            f"max_unpool2d: Expected shape of indices to be same as that of the input tensor "
            f"({input.shape}) but got indices tensor with shape: {indices.shape}"
        )
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p = pair(padding, "padding")
    if min(k) < 1 or min(s) < 1 or min(p) < 0:
        raise ValueError(f"max_unpool2d: invalid kernel_size {k}, stride {s} or padding {p}")
    default = tuple((input.shape[2 + i] - 1) * s[i] - 2 * p[i] + k[i] for i in (0, 1))
    if output_size is None:
        out_hw = default
    else:
        out_hw = tuple(int(n) for n in tuple(output_size)[-2:])
        for i in (0, 1):
            if not default[i] - s[i] < out_hw[i] < default[i] + s[i]:
                raise ValueError(
                    f"max_unpool2d: invalid output_size {tuple(output_size)} (dim {i} must be between "
                    f"{default[i] - s[i] + 1} and {default[i] + s[i] - 1})"
                )
    if min(out_hw) < 1:
        raise ValueError(f"max_unpool2d: the output size {out_hw} is not positive (input {input.shape})")
    idx = indices.data
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= out_hw[0] * out_hw[1]):
        bad = int(idx.max()) if int(idx.max()) >= out_hw[0] * out_hw[1] else int(idx.min())
        raise ValueError(
            f"max_unpool2d: Found an invalid max index: {bad} (output volumes are of size "
            f"{out_hw[0]}x{out_hw[1]})"
        )
    return ops.MaxUnpool2d.apply(input, indices=idx.astype(np.int64), out_hw=out_hw)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over each window; ``ceil_mode`` keeps the partial windows at the bottom/right."""
    check_float("avg_pool2d", input=input)
    k, s, p, _ = _pool_args("avg_pool2d", input, kernel_size, stride, padding, ceil_mode=ceil_mode)
    h, w = input.shape[2:]
    eh, ew = (ceil_extra((h, w)[i], k[i], s[i], p[i]) for i in (0, 1)) if ceil_mode else (0, 0)
    if not (eh or ew):
        return ops.AvgPool2d.apply(input, kernel=k, stride=s, padding=p,
                                     count_include_pad=count_include_pad)
    # partial windows: window sums over the zero-padded input, divided by PyTorch's divisors
    x = ops.pad(input, (p[1], p[1] + ew, p[0], p[0] + eh))
    sums = ops.AvgPool2d.apply(x, kernel=k, stride=s, padding=(0, 0), count_include_pad=True)
    oh, ow = sums.shape[2:]
    dh = avg_divisor_axis(h, k[0], s[0], p[0], oh, count_include_pad)
    dw = avg_divisor_axis(w, k[1], s[1], p[1], ow, count_include_pad)
    scale = (k[0] * k[1]) / (dh[:, None] * dw[None, :])
    return sums * Tensor._wrap(xp_for(input.device).asarray(scale.astype(input.dtype)), device=input.device)


def _adaptive_size(fn: str, input: Tensor, output_size) -> tuple:
    """The (oh, ow) of an adaptive pool (``None`` keeps the input size), checked as in PyTorch."""
    if input.ndim != 4:
        raise ValueError(f"{fn}: expected a 4-D input, got shape {input.shape}")
    h, w = input.shape[2:]
    if h == 0 or w == 0 or input.shape[1] == 0:
        dim = input.shape.index(0, 1)
        raise ValueError(
            f"{fn}(): Expected input to have non-zero size for non-batch dimensions, but input has sizes "
            f"{list(input.shape)} with dimension {dim} being empty"
        )
    if isinstance(output_size, (tuple, list)):
        output_size = tuple(n if o is None else o for o, n in zip(output_size, (h, w)))
    oh, ow = pair(output_size, "output_size")
    if oh < 0 or ow < 0:
        raise ValueError(
            f"{fn}: elements of output_size must be greater than or equal to 0 but received {{{oh}, {ow}}}"
        )
    return oh, ow


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average over PyTorch's adaptive bins; separable, so it is ``P_h @ x @ P_w^T``."""
    oh, ow = _adaptive_size("adaptive_avg_pool2d", input, output_size)
    h, w = input.shape[2:]
    if oh == 0 or ow == 0:  # as PyTorch: an empty output, and a zero gradient
        return input[:, :, :0, :0].reshape(input.shape[0], input.shape[1], oh, ow)
    if (oh, ow) == (1, 1):
        return input.mean(dim=(2, 3), keepdim=True)
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(input, (h // oh, w // ow))
    xp = xp_for(input.device)
    ph = Tensor._wrap(xp.asarray(adaptive_matrix(h, oh, input.dtype)), device=input.device)
    pw = Tensor._wrap(xp.asarray(adaptive_matrix(w, ow, input.dtype).T.copy()), device=input.device)
    return ph @ input @ pw


def adaptive_max_pool2d(input: Tensor, output_size) -> Tensor:
    """Max over PyTorch's adaptive bins [floor(i n/o), ceil((i+1) n/o)) (bins may overlap)."""
    oh, ow = _adaptive_size("adaptive_max_pool2d", input, output_size)
    h, w = input.shape[2:]
    if oh == 0 or ow == 0:  # as PyTorch: an empty output, and a zero gradient
        return input[:, :, :0, :0].reshape(input.shape[0], input.shape[1], oh, ow)
    if h % oh == 0 and w % ow == 0:
        return max_pool2d(input, (h // oh, w // ow))
    # uneven bins: one small max per output pixel (output sizes are small: 1x1 .. 7x7)
    def bins(n, o):
        return [((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o)]

    cols = []
    for a, b in bins(h, oh):
        row = [input[:, :, a:b, c:d].flatten(2).max(2).values for c, d in bins(w, ow)]
        cols.append(_stack(row, dim=2))
    return _stack(cols, dim=2)


_INTERP_DIMS = {"nearest": None, "nearest-exact": None, "linear": 3, "bilinear": 4, "trilinear": 5}


def _interp_ratio(n_in: int, n_out: int, scale) -> float:
    # PyTorch uses 1/scale_factor when it is given, else in/out
    return (1.0 / scale) if scale is not None else n_in / n_out


def _nearest_index(n_in: int, n_out: int, mode: str, scale) -> np.ndarray:
    """The input index that each output pixel copies (one axis), by PyTorch's rule for ``mode``."""
    ratio = _interp_ratio(n_in, n_out, scale)
    if mode == "nearest-exact":
        src = np.floor((np.arange(n_out) + 0.5) * ratio).astype(np.int64)
    elif n_out == 2 * n_in:  # PyTorch's exact 2x shortcut (ignores a scale_factor like 2.2)
        src = np.arange(n_out) // 2
    else:
        src = np.floor(np.arange(n_out) * ratio).astype(np.int64)
    return np.minimum(src, n_in - 1)


def _linear_matrix(n_in: int, n_out: int, align_corners: bool | None, scale) -> np.ndarray:
    """Row i holds the weights (float64) that output pixel i takes from the input pixels (one axis)."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    if align_corners:
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        src = np.maximum((np.arange(n_out) + 0.5) * _interp_ratio(n_in, n_out, scale) - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m


def _along_axis(x: Tensor, axis: int, a: Tensor) -> Tensor:
    """Apply the (n_out, n_in) matrix ``a`` along ``axis`` of x (matmul on the last two axes)."""
    if axis == x.ndim - 1:
        return x @ a.T
    if axis == x.ndim - 2:
        return a @ x
    return (x.transpose(axis, -1) @ a.T).transpose(axis, -1)


def _interp_sizes(input: Tensor, size, scale_factor, recompute_scale_factor) -> tuple:
    """Output sizes and per-axis scales (None: use in/out), checked with PyTorch's messages."""
    spatial = input.shape[2:]
    k = len(spatial)
    if size is not None and scale_factor is not None:
        raise ValueError("interpolate: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError(
            "interpolate: either size or scale_factor should be defined (give exactly one of size and "
            "scale_factor)"
        )
    if size is not None:
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * k
        if len(sizes) != k:
            raise ValueError(
                f"interpolate: Input and output must have the same number of spatial dimensions, but got "
                f"input with spatial dimensions of {list(spatial)} and output size of {size}. Please provide "
                "input tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) format."
            )
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in sizes):
            raise TypeError(f"interpolate: size must be an int or a sequence of ints, got {size!r}")
        out, scales = tuple(int(n) for n in sizes), (None,) * k
    else:
        scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * k
        if len(scales) != k:
            raise ValueError(
                f"interpolate: Input and scale_factor must have the same number of spatial dimensions, but "
                f"got input with spatial dimensions of {list(spatial)} and scale_factor of shape "
                f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and "
                "scale_factor in (s1, s2, ...,sK) format."
            )
        scales = tuple(float(f) for f in scales)
        if not all(np.isfinite(scales)):
            raise ValueError(f"interpolate: scale_factor must be finite, got {scale_factor!r}")
        out = tuple(int(np.floor(n * f)) for n, f in zip(spatial, scales))
        if recompute_scale_factor:
            scales = (None,) * k
    if min(spatial) <= 0 or min(out) <= 0:
        names = ("D", "H", "W")[3 - k:]
        got_in, got_out = (", ".join(f"{a}: {n}" for a, n in zip(names, ns)) for ns in (spatial, out))
        raise ValueError(
            f"interpolate: Input and output sizes should be greater than 0, but got input ({got_in}) "
            f"output ({got_out})"
        )
    return out, scales


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize (N, C, *spatial) with 1, 2 or 3 spatial axes, as PyTorch: ``mode`` 'nearest' or
    'nearest-exact' (any dims), 'linear' (3-D input), 'bilinear' (4-D), 'trilinear' (5-D).

    Every mode is separable. Nearest copies pixels (an index gather, exact for every dtype; its
    backward scatter-adds). The linear modes multiply each axis by a small interpolation matrix,
    ``A_h @ x @ A_w^T`` for bilinear, so backward comes from matmul's. uint8 input is resized in float64
    and rounded back to uint8 (as PyTorch's uint8 path, to within 1); other integer dtypes raise, as
    in PyTorch, for the linear modes.

        >>> interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"interpolate: input must be a Tensor, got {type(input).__name__}")
    if mode not in _INTERP_DIMS or not 3 <= input.ndim <= 5:
        raise NotImplementedError(
            f"interpolate: Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for "
            f"the modes: {' | '.join(_INTERP_DIMS)} (got {mode})"
        )
    need = _INTERP_DIMS[mode]
    if need is not None and input.ndim != need:
        raise NotImplementedError(
            f"interpolate: Got {input.ndim}D input, but {mode} mode needs {need}D input"
        )
    if need is None and align_corners is not None:
        raise ValueError(
            "interpolate: align_corners option can only be set with the interpolating modes: "
            "linear | bilinear | trilinear"
        )
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    out_sizes, scales = _interp_sizes(input, size, scale_factor, recompute_scale_factor)
    dt = np.dtype(input.dtype)
    if need is not None and dt.kind in "iub" and dt != np.uint8:
        raise NotImplementedError(
            f"interpolate: mode {mode!r} is not implemented for dtype {dt} (PyTorch supports uint8 and "
            "floating-point input; convert with .float())"
        )
    xp = xp_for(input.device)
    spatial = input.shape[2:]
    if need is None:  # nearest: gather the source pixels
        out = input
        for i, (n_in, n_out, sc) in enumerate(zip(spatial, out_sizes, scales)):
            if n_out != n_in:  # NOTE: as in PyTorch, an axis whose size does not change is copied as is
                idx = xp.asarray(_nearest_index(n_in, n_out, mode, sc))
                out = out[(slice(None),) * (2 + i) + (idx,)]
        return out
    mats = [None if n_out == n_in else _linear_matrix(n_in, n_out, align_corners, sc)
            for n_in, n_out, sc in zip(spatial, out_sizes, scales)]
    if dt == np.uint8:  # integer data has no gradient: resize the array in float64, round back
        y = input.data.astype(np.float64)
        for i, m in enumerate(mats):
            if m is not None:
                y = xp.moveaxis(xp.tensordot(xp.asarray(m), y, axes=([1], [2 + i])), 0, 2 + i)
        y = xp.clip(xp.rint(y), 0, 255).astype(np.uint8)
        return Tensor._wrap(xp.ascontiguousarray(y), device=input.device)
    out = input
    for i, m in enumerate(mats):
        if m is not None:
            a = Tensor._wrap(xp.asarray(m.astype(input.dtype)), device=input.device)
            out = _along_axis(out, 2 + i, a)
    return out


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of (N, C, ...) input.

    training=True: use the batch mean and biased variance, and update running stats in place:
    ``running = (1 - momentum) running + momentum batch`` (unbiased variance, as in PyTorch).
    training=False: use running_mean and running_var.
    """
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, False)


def batch_norm_relu(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
                    weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
                    momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """``relu(batch_norm(...))`` (not in PyTorch): when training, one fused op (``ops.BatchNormReLUTrain``:
    the CPU kernels apply the ReLU inside the batch norm's passes). ``nn.Sequential`` calls it for a
    BatchNorm followed by a ReLU.

    >>> y = F.batch_norm_relu(x, None, None, training=True)   # == F.relu(F.batch_norm(x, ...))
    """
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, True)


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, with_relu):
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, ...), got {input.shape}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and t.shape != (c,):
            raise ValueError(
                f"batch_norm: {name} has shape {t.shape}, expected ({c},) for input {input.shape}"
            )
    if (weight is None) != (bias is None):
        raise ValueError("batch_norm: give both weight and bias, or neither")
    if training:
        m = input.numel() // c
        if m <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input {input.shape}"
            )
        op = ops.BatchNormReLUTrain if with_relu else ops.BatchNormTrain
        out = op.apply(input, weight, bias, eps=eps) if weight is not None else op.apply(input, eps=eps)
        if running_mean is not None:
            ctx = out._ctx
            # recompute the stats if the graph was not recorded (no_grad), otherwise reuse the op's
            axes = (0,) + tuple(range(2, input.ndim))
            if ctx is not None:
                mean, invstd = ctx.mean, ctx.invstd
                var = 1.0 / (invstd.astype(np.float64) ** 2) - eps
            else:
                mean, var = input.data.mean(axis=axes), input.data.var(axis=axes)
            new_mean = (1 - momentum) * running_mean.data + momentum * mean
            running_mean.data = new_mean.astype(running_mean.dtype)
            unbiased = var * (m / (m - 1))
            new_var = (1 - momentum) * running_var.data + momentum * unbiased
            running_var.data = new_var.astype(running_var.dtype)
        return out
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: eval mode needs running_mean and running_var")
    # eval: y = (x - mean) / sqrt(var + eps) * w + b, with mean and var constants
    inv_arr = 1.0 / xp_for(input.device).sqrt(running_var.data + eps)
    inv = Tensor._wrap(inv_arr.astype(input.dtype), input.device)
    mean = running_mean.detach()
    if input.numel() == 0:  # an empty batch: broadcasting ops give the (empty) result and zero gradients
        shape = (1, c) + (1,) * (input.ndim - 2)
        scale = inv if weight is None else weight * inv
        shift = -mean * inv if weight is None else bias - mean * weight * inv
        out = input * scale.reshape(shape) + shift.reshape(shape)
        return relu(out) if with_relu else out
    # one pass over the activations (ChannelAffine); the per-channel constants keep their gradients
    if weight is None:
        out = ops.ChannelAffine.apply(input, inv, -mean * inv)
    else:
        out = ops.ChannelAffine.apply(input, weight * inv, bias - mean * weight * inv)
    return relu(out) if with_relu else out


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity when not training)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    xp = xp_for(input.device)
    if p == 1.0:
        mask = xp.zeros(input.shape, dtype=input.dtype)
    else:
        keep = get_generator().random(input.shape) >= p
        mask = xp.asarray((keep / (1.0 - p)).astype(input.dtype))
    return ops.Dropout.apply(input, p=p, mask=mask)


# ------------------------------------------------------------------------------- 3-D (volumes, NCDHW)
# conv3d, conv_transpose3d, max_pool3d, avg_pool3d, adaptive_avg/max_pool3d live in functional_3d.py
# NOTE: imported last: functional_3d uses this module's pooling helpers defined above
from .functional_3d import (  # noqa: E402
    adaptive_avg_pool3d,
    adaptive_max_pool3d,
    avg_pool3d,
    conv3d,
    conv_transpose3d,
    max_pool3d,
)

__all__ += ["conv3d", "conv_transpose3d", "max_pool3d", "avg_pool3d", "adaptive_avg_pool3d",
            "adaptive_max_pool3d"]
