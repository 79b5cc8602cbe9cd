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
from ..tensor import Tensor
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

__all__ = [
    "linear", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d", "interpolate", "batch_norm", "dropout", "cross_entropy", "nll_loss",
    "binary_cross_entropy_with_logits", "binary_cross_entropy", "mse_loss", "l1_loss", "smooth_l1_loss",
    "relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "softplus", "softmax", "log_softmax", "pad",
    "one_hot", "dice_loss", "tversky_loss", "dice_bce_loss", "dice_ce_loss", "sigmoid_focal_loss",
    "centernet_focal_loss",
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


def pad(input: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    return ops.pad(input, pad, mode=mode, value=value)


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
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0 or groups < 1:
        raise ValueError(
            f"conv2d: invalid stride {stride}, padding {padding}, dilation {dilation} or groups {groups}"
        )
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
            raise ValueError(
                f"conv2d: input spatial size {input.shape[2:]} (padded by {padding}) is smaller than the "
                f"kernel {weight.shape[2:]} (dilation {dilation})"
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
    args = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
                groups=groups)
    if bias is None:
        return ops.ConvTranspose2d.apply(input, weight, **args)
    return ops.ConvTranspose2d.apply(input, weight, bias, **args)


def _pool_args(fn, input, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    if input.ndim != 4:
        raise ValueError(f"{fn}: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    k = pair(kernel_size, "kernel_size")
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    s = k if no_stride else pair(stride, "stride")
    p, d = pair(padding, "padding"), pair(dilation, "dilation")
    if p[0] * 2 > k[0] or p[1] * 2 > k[1]:
        raise ValueError(f"{fn}: padding {p} should be at most half of kernel_size {k}")
    for i in (0, 1):
        # ceil_mode keeps a window that hangs past the end, as long as it starts inside
        slack = s[i] - 1 if ceil_mode else 0
        if input.shape[2 + i] + 2 * p[i] + slack < d[i] * (k[i] - 1) + 1:
            raise ValueError(f"{fn}: input of shape {input.shape} is smaller than the kernel {k}")
    return k, s, p, d


def _ceil_extra(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    """Extra bottom/right padding that ``ceil_mode=True`` needs, by PyTorch's rule: the output size is
    rounded up, but the last window must start inside the input or its left padding."""
    eff = d * (k - 1) + 1
    out = -(-(n + 2 * p - eff) // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return max((out - 1) * s + eff - (n + 2 * p), 0)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """Max over each (dilated) window; ``ceil_mode`` keeps the partial windows at the bottom/right.

    ``return_indices=True`` also returns, as in PyTorch, each max's flat index ``h * W + w`` in its
    input plane (int64)."""
    check_float("max_pool2d", input=input)
    k, s, p, d = _pool_args("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    width = input.shape[3]
    if ceil_mode:
        eh, ew = (_ceil_extra(input.shape[2 + i], k[i], s[i], p[i], d[i]) for i in (0, 1))
        if eh or ew:  # pad with -inf: a padded element is never a window's max
            input = ops.pad(input, (0, ew, 0, eh), value=float("-inf"))
    out = ops.MaxPool2d.apply(input, kernel=k, stride=s, padding=p, dilation=d)
    if not return_indices:
        return out
    # the kernels give each argmax's position u * kW + v inside its window: turn it into h * W + w
    win = out._ctx.idx if out._ctx is not None else backend(input.device).max_pool2d_forward(
        input.data, k, s, p, d)[1]
    xp = xp_for(input.device)
    ho, wo = out.shape[2:]
    rows = xp.arange(ho).reshape(-1, 1) * s[0] - p[0] + (win // k[1]) * d[0]
    cols = xp.arange(wo).reshape(1, -1) * s[1] - p[1] + (win % k[1]) * d[1]
    return out, Tensor._wrap((rows * width + cols).astype(np.int64), device=input.device)


def _avg_divisor_axis(n: int, k: int, s: int, p: int, n_out: int, count_include_pad: bool) -> np.ndarray:
    """PyTorch's per-window divisor along one axis: the window clipped to the padded input (or, without
    count_include_pad, to the input itself)."""
    start = np.arange(n_out) * s - p
    end = np.minimum(start + k, n + p)
    if count_include_pad:
        return (end - start).astype(np.float64)
    return (np.minimum(end, n) - np.maximum(start, 0)).astype(np.float64)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over each window; ``ceil_mode`` keeps the partial windows at the bottom/right."""
    check_float("avg_pool2d", input=input)
    k, s, p, _ = _pool_args("avg_pool2d", input, kernel_size, stride, padding, ceil_mode=ceil_mode)
    h, w = input.shape[2:]
    eh, ew = (_ceil_extra((h, w)[i], k[i], s[i], p[i]) for i in (0, 1)) if ceil_mode else (0, 0)
    if not (eh or ew):
        return ops.AvgPool2d.apply(input, kernel=k, stride=s, padding=p,
                                     count_include_pad=count_include_pad)
    # partial windows: window sums over the zero-padded input, divided by PyTorch's divisors
    x = ops.pad(input, (p[1], p[1] + ew, p[0], p[0] + eh))
    sums = ops.AvgPool2d.apply(x, kernel=k, stride=s, padding=(0, 0), count_include_pad=True)
    oh, ow = sums.shape[2:]
    dh = _avg_divisor_axis(h, k[0], s[0], p[0], oh, count_include_pad)
    dw = _avg_divisor_axis(w, k[1], s[1], p[1], ow, count_include_pad)
    scale = (k[0] * k[1]) / (dh[:, None] * dw[None, :])
    return sums * Tensor._wrap(xp_for(input.device).asarray(scale.astype(input.dtype)), device=input.device)


def _adaptive_matrix(n_in: int, n_out: int, dtype) -> np.ndarray:
    """Averaging matrix (n_out, n_in) with PyTorch's bins [floor(i n/o), ceil((i+1) n/o))."""
    m = np.zeros((n_out, n_in), dtype=dtype)
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, a:b] = 1.0 / (b - a)
    return m


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average over PyTorch's adaptive bins; separable, so it is ``P_h @ x @ P_w^T``."""
    if input.ndim != 4:
        raise ValueError(f"adaptive_avg_pool2d: expected a 4-D input, got shape {input.shape}")
    h, w = input.shape[2:]
    oh, ow = pair(output_size if not isinstance(output_size, (tuple, list)) else
                   tuple(n if o is None else o for o, n in zip(output_size, (h, w))), "output_size")
    if (oh, ow) == (1, 1):
        return input.mean(dim=(2, 3), keepdim=True)
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(input, (h // oh, w // ow))
    xp = xp_for(input.device)
    ph = Tensor._wrap(xp.asarray(_adaptive_matrix(h, oh, input.dtype)), device=input.device)
    pw = Tensor._wrap(xp.asarray(_adaptive_matrix(w, ow, input.dtype).T.copy()), device=input.device)
    return ph @ input @ pw


def adaptive_max_pool2d(input: Tensor, output_size) -> Tensor:
    """Max over PyTorch's adaptive bins [floor(i n/o), ceil((i+1) n/o)) (bins may overlap)."""
    if input.ndim != 4:
        raise ValueError(f"adaptive_max_pool2d: expected a 4-D input, got shape {input.shape}")
    h, w = input.shape[2:]
    oh, ow = pair(output_size if not isinstance(output_size, (tuple, list)) else
                   tuple(n if o is None else o for o, n in zip(output_size, (h, w))), "output_size")
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


def _interp_matrix(n_in: int, n_out: int, mode: str, align_corners: bool | None, scale, dtype) -> np.ndarray:
    """Row i holds the weights that output pixel i takes from the input pixels (one axis)."""
    m = np.zeros((n_out, n_in), dtype=np.float64)
    # PyTorch uses 1/scale_factor when it is given, else in/out
    ratio = (1.0 / scale) if scale is not None else n_in / n_out
    if mode == "nearest":
        if n_out == 2 * n_in:  # PyTorch's exact 2x shortcut (ignores a scale_factor like 2.2)
            src = np.arange(n_out) // 2
        else:
            src = np.minimum(np.floor(np.arange(n_out) * ratio).astype(np.int64), n_in - 1)
        m[np.arange(n_out), src] = 1.0
        return m.astype(dtype)
    if align_corners:
        src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        src = np.maximum((np.arange(n_out) + 0.5) * ratio - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    np.add.at(m, (np.arange(n_out), lo), 1 - frac)
    np.add.at(m, (np.arange(n_out), hi), frac)
    return m.astype(dtype)


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: bool | None = None) -> Tensor:
    """Resize (N, C, H, W) with ``mode`` 'nearest' or 'bilinear'; both are separable, so the resize is
    ``A_h @ x @ A_w^T`` with small interpolation matrices, and backward comes from matmul's."""
    if input.ndim != 4:
        raise ValueError(f"interpolate: expected a 4-D input (N, C, H, W), got shape {input.shape}")
    if mode not in ("nearest", "bilinear"):
        raise NotImplementedError(
            f"interpolate: mode {mode!r} is not supported (use 'nearest' or 'bilinear')"
        )
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners only applies to mode='bilinear'")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    h, w = input.shape[2:]
    if size is not None:
        oh, ow = pair(size, "size")
        sh = sw = None
    else:
        sh, sw = (scale_factor, scale_factor) if not isinstance(scale_factor, (tuple, list)) else scale_factor
        oh, ow = int(np.floor(h * sh)), int(np.floor(w * sw))
    xp = xp_for(input.device)
    out = input
    # NOTE: as in PyTorch, an axis whose size does not change is copied as is, whatever scale_factor says
    if oh != h:
        ah = _interp_matrix(h, oh, mode, align_corners, sh, input.dtype)
        out = Tensor._wrap(xp.asarray(ah), device=input.device) @ out
    if ow != w:
        aw = _interp_matrix(w, ow, mode, align_corners, sw, input.dtype)
        out = out @ Tensor._wrap(xp.asarray(aw.T.copy()), device=input.device)
    return out


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of (N, C, ...) input.

    training=True: use the batch mean and biased variance, and update running stats in place:
    ``running = (1 - momentum) running + momentum batch`` (unbiased variance, as in PyTorch).
    training=False: use running_mean and running_var.
    """
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
        out = (ops.BatchNormTrain.apply(input, weight, bias, eps=eps) if weight is not None
               else ops.BatchNormTrain.apply(input, eps=eps))
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
    # one pass over the activations (ChannelAffine); the per-channel constants keep their gradients
    if weight is None:
        return ops.ChannelAffine.apply(input, inv, -mean * inv)
    return ops.ChannelAffine.apply(input, weight * inv, bias - mean * weight * inv)


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
