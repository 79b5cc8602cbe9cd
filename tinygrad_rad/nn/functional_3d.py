"""The 3-D (volume, NCDHW) half of ``nn.functional``: ``conv3d``, ``conv_transpose3d``, ``max_pool3d``,
``avg_pool3d``, ``adaptive_avg_pool3d``, ``adaptive_max_pool3d`` with PyTorch's names, arguments, output sizes
and argument checks; re-exported by ``nn.functional`` (use them as ``F.conv3d``).

    >>> import tinygrad_rad as tr
    >>> from tinygrad_rad.nn import functional as F
    >>> F.conv3d(tr.randn(2, 1, 8, 8, 8), tr.randn(4, 1, 3, 3, 3), padding=1).shape
    (2, 4, 8, 8, 8)

``F.batch_norm``, ``F.pad``, ``F.interpolate`` (nearest, trilinear) and ``F.dropout`` already take 5-D
input. An unbatched (C, D, H, W) input works as in PyTorch (a batch of one, squeezed back).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..device import backend, xp_for
from ..tensor import Tensor
from ..tensor import stack as _stack
from .argcheck import check_float

# NOTE: imported by functional.py at its end, so these helpers exist by then (the nn package always
# imports functional.py before this module)
from .pooling import adaptive_matrix, avg_divisor_axis, ceil_extra, pool_out

__all__ = ["conv3d", "conv_transpose3d", "max_pool3d", "avg_pool3d", "adaptive_avg_pool3d",
           "adaptive_max_pool3d", "triple"]


def triple(v, name: str, fn: str = "") -> tuple:
    """An int or a 3-sequence as a triple of ints (``kernel_size=3`` -> ``(3, 3, 3)``)."""
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            return (int(v[0]),) * 3
        if len(v) != 3:
            where = f"{fn}: " if fn else ""
            raise ValueError(f"{where}{name} must either be a single int, or a tuple of three ints, "
                             f"got {v!r}")
        return int(v[0]), int(v[1]), int(v[2])
    return (int(v),) * 3


def _batched(fn: str, input: Tensor, what: str = "input"):
    """(input as 5-D, whether it was unbatched 4-D)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}: {what} must be a Tensor, got {type(input).__name__}")
    if input.ndim == 4:
        return input.reshape((1,) + input.shape), True
    if input.ndim != 5:
        raise ValueError(
            f"{fn}: Expected 4D (unbatched) or 5D (batched) input to {fn}, but got input of size: "
            f"{list(input.shape)}"
        )
    return input, False


def _unbatch(out, unbatched: bool):
    return out.reshape(out.shape[1:]) if unbatched else out


def _check_conv_args(fn: str, stride, padding, dilation, groups) -> None:
    """PyTorch's checks (and wording) for convolution arguments, before any work is done."""
    if min(stride) < 1:
        raise ValueError(f"{fn}: non-positive stride is not supported (got stride {stride})")
    if min(padding) < 0:
        raise ValueError(f"{fn}: negative padding is not supported (got padding {padding})")
    if min(dilation) < 1:
        raise ValueError(f"{fn}: dilation should be greater than zero, but got {list(dilation)}")
    if groups < 1:
        raise ValueError(f"{fn}: non-positive groups is not supported (got groups={groups})")


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """3-D cross-correlation over (N, C_in, D, H, W) with weight (C_out, C_in/groups, kD, kH, kW);
    ``padding`` may be an int, a triple, ``'same'`` or ``'valid'``.

        >>> F.conv3d(tr.randn(1, 2, 6, 6, 6), tr.randn(3, 2, 3, 3, 3), stride=2).shape
        (1, 3, 2, 2, 2)
    """
    check_float("conv3d", input=input, weight=weight, bias=bias)
    input, unbatched = _batched("conv3d", input)
    if weight.ndim != 5:
        raise ValueError(
            f"conv3d: expected a 5-D weight (C_out, C_in/groups, kD, kH, kW), got shape {weight.shape}"
        )
    stride, dilation = triple(stride, "stride", "conv3d"), triple(dilation, "dilation", "conv3d")
    kernel = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0, 0)
        elif padding == "same":
            if stride != (1, 1, 1):
                raise ValueError("conv3d: padding='same' is not supported for strided convolutions")
            tot = [d * (k - 1) for k, d in zip(kernel, dilation)]
            extra = [t % 2 for t in tot]
            if any(extra):  # PyTorch's asymmetric 'same': the odd voxel of padding goes after
                input = ops.pad(input, (0, extra[2], 0, extra[1], 0, extra[0]))
            padding = tuple(t // 2 for t in tot)
        else:
            raise ValueError(f"conv3d: padding must be an int, a triple, 'same' or 'valid', got {padding!r}")
    else:
        padding = triple(padding, "padding", "conv3d")
    _check_conv_args("conv3d", stride, padding, dilation, groups)
    cin = input.shape[1]
    if weight.shape[0] % groups:
        raise ValueError(f"conv3d: out_channels={weight.shape[0]} must be divisible by groups={groups}")
    if weight.shape[1] * groups != cin:
        raise ValueError(
            f"conv3d: Given groups={groups}, weight of size {list(weight.shape)}, expected input"
            f"{list(input.shape)} to have {weight.shape[1] * groups} channels, but got {cin} channels instead"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv3d: bias shape {bias.shape} does not match out_channels={weight.shape[0]}")
    padded = [input.shape[2 + i] + 2 * padding[i] for i in range(3)]
    eff = [dilation[i] * (kernel[i] - 1) + 1 for i in range(3)]
    if any(p < e for p, e in zip(padded, eff)):
        raise ValueError(
            f"conv3d: Calculated padded input size per channel: ({' x '.join(map(str, padded))}). Kernel "
            f"size: ({' x '.join(map(str, eff))}). Kernel size can't be greater than actual input size"
        )
    if input.dtype != weight.dtype:
        raise TypeError(f"conv3d: input dtype {input.dtype} and weight dtype {weight.dtype} differ")
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if bias is None:
        out = ops.Conv3d.apply(input, weight, **args)
    else:
        out = ops.Conv3d.apply(input, weight, bias, **args)
    return _unbatch(out, unbatched)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """Transposed 3-D convolution (the adjoint of conv3d); weight (C_in, C_out/groups, kD, kH, kW).

        >>> F.conv_transpose3d(tr.randn(1, 4, 3, 3, 3), tr.randn(4, 2, 2, 2, 2), stride=2).shape
        (1, 2, 6, 6, 6)
    """
    check_float("conv_transpose3d", input=input, weight=weight, bias=bias)
    input, unbatched = _batched("conv_transpose3d", input)
    if weight.ndim != 5:
        raise ValueError(
            f"conv_transpose3d: expected a 5-D weight (C_in, C_out/groups, kD, kH, kW), got shape "
            f"{weight.shape}"
        )
    fn = "conv_transpose3d"
    stride, padding = triple(stride, "stride", fn), triple(padding, "padding", fn)
    output_padding, dilation = triple(output_padding, "output_padding", fn), triple(dilation, "dilation", fn)
    _check_conv_args(fn, stride, padding, dilation, groups)
    if input.shape[1] != weight.shape[0]:
        raise ValueError(
            f"conv_transpose3d: Given transposed=1, weight of size {list(weight.shape)}, expected input"
            f"{list(input.shape)} to have {weight.shape[0]} channels, but got {input.shape[1]} channels "
            f"instead"
        )
    if input.shape[1] % groups:
        raise ValueError(f"conv_transpose3d: groups={groups} must divide in_channels={input.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[1] * groups,):
        raise ValueError(
            f"conv_transpose3d: bias shape {bias.shape} does not match "
            f"out_channels={weight.shape[1] * groups}"
        )
    for i in range(3):
        if output_padding[i] >= max(stride[i], dilation[i]):
            raise ValueError(
                f"conv_transpose3d: output padding must be smaller than either stride or dilation, but got "
                f"output_padding={list(output_padding)}, stride={list(stride)}, dilation={list(dilation)}"
            )
    size = [(input.shape[2 + i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (weight.shape[2 + i] - 1)
            + output_padding[i] + 1 for i in range(3)]
    if min(size) < 1:
        raise ValueError(
            f"conv_transpose3d: Given input size per channel: ({' x '.join(map(str, input.shape[2:]))}). "
            f"Calculated output size per channel: ({' x '.join(map(str, size))}). Output size is too small"
        )
    if input.dtype != weight.dtype:
        raise TypeError(f"conv_transpose3d: input dtype {input.dtype} and weight dtype {weight.dtype} differ")
    args = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
                groups=groups)
    if bias is None:
        out = ops.ConvTranspose3d.apply(input, weight, **args)
    else:
        out = ops.ConvTranspose3d.apply(input, weight, bias, **args)
    return _unbatch(out, unbatched)


# -------------------------------------------------------------------------------------- pooling
def _pool_args(fn, input, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    """kernel, stride, padding, dilation as triples, checked up front with PyTorch's messages."""
    k = triple(kernel_size, "kernel_size", fn)
    no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
    s = k if no_stride else triple(stride, "stride", fn)
    p, d = triple(padding, "padding", fn), triple(dilation, "dilation", fn)
    if min(k) < 1:
        raise ValueError(f"{fn}: kernel size should be greater than zero, but got kT: {k[0]} kH: {k[1]} "
                         f"kW: {k[2]}")
    if min(s) < 1:
        raise ValueError(f"{fn}: stride should be greater than zero, but got dT: {s[0]} dH: {s[1]} "
                         f"dW: {s[2]}")
    if min(d) < 1:
        raise ValueError(f"{fn}: dilation should be greater than zero, but got dilationT: {d[0]} dilationH: "
                         f"{d[1]} dilationW: {d[2]}")
    if min(p) < 0:
        raise ValueError(f"{fn}: pad must be non-negative, but got pad: {min(p)}")
    for i in range(3):
        if p[i] * 2 > d[i] * (k[i] - 1) + 1:
            raise ValueError(
                f"{fn}: pad should be at most half of effective kernel size, but got pad={p[i]}, "
                f"kernel_size={k[i]} and dilation={d[i]}"
            )
    out = [pool_out(input.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(3)]
    if min(out) < 1:
        c = input.shape[1]
        raise ValueError(
            f"{fn}: Given input size: ({c}x{'x'.join(map(str, input.shape[2:]))}). Calculated output size: "
            f"({c}x{'x'.join(map(str, out))}). Output size is too small"
        )
    return k, s, p, d


def max_pool3d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over each (dilated) window of (N, C, D, H, W); ``ceil_mode`` keeps the partial windows at the
    far ends. ``return_indices=True`` also returns each max's flat index ``(z * H + h) * W + w`` in its
    input volume (int64), as PyTorch.

        >>> F.max_pool3d(tr.randn(1, 2, 8, 8, 8), 2).shape
        (1, 2, 4, 4, 4)
    """
    check_float("max_pool3d", input=input)
    input, unbatched = _batched("max_pool3d", input)
    k, s, p, d = _pool_args("max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode)
    spatial = tuple(input.shape[2:])
    extra = [ceil_extra(spatial[i], k[i], s[i], p[i], d[i]) for i in range(3)] if ceil_mode else [0, 0, 0]
    x = input
    if any(extra):  # pad with -inf: a padded element is never a window's max
        x = ops.pad(input, (0, extra[2], 0, extra[1], 0, extra[0]), value=float("-inf"))
    out = ops.MaxPool3d.apply(x, kernel=k, stride=s, padding=p, dilation=d)
    if not return_indices:
        return _unbatch(out, unbatched)
    win = (out._ctx.idx if out._ctx is not None
           else backend(x.device).max_pool3d_forward(x.data, k, s, p, d)[1])
    # each argmax's position (a * kH + u) * kW + v inside its window becomes its flat index in the volume
    xp = xp_for(input.device)
    do, ho, wo = out.shape[2:]
    zs = xp.arange(do).reshape(-1, 1, 1) * s[0] - p[0] + (win // (k[1] * k[2])) * d[0]
    hs = xp.arange(ho).reshape(1, -1, 1) * s[1] - p[1] + ((win // k[2]) % k[1]) * d[1]
    ws = xp.arange(wo).reshape(1, 1, -1) * s[2] - p[2] + (win % k[2]) * d[2]
    idx = Tensor._wrap(((zs * spatial[1] + hs) * spatial[2] + ws).astype(np.int64), device=input.device)
    return _unbatch(out, unbatched), _unbatch(idx, unbatched)


def avg_pool3d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Mean over each window of (N, C, D, H, W) (PyTorch's divisors; ``divisor_override`` replaces them).

        >>> F.avg_pool3d(tr.randn(1, 2, 8, 8, 8), 2).shape
        (1, 2, 4, 4, 4)
    """
    check_float("avg_pool3d", input=input)
    input, unbatched = _batched("avg_pool3d", input)
    k, s, p, _ = _pool_args("avg_pool3d", input, kernel_size, stride, padding, ceil_mode=ceil_mode)
    if divisor_override is not None and int(divisor_override) == 0:
        raise ValueError("avg_pool3d: divisor must be not zero")
    spatial = tuple(input.shape[2:])
    if any(spatial[i] + 2 * p[i] < k[i] for i in range(3)):
        raise ValueError(
            f"avg_pool3d: input image (T: {spatial[0]} H: {spatial[1]} W: {spatial[2]}) smaller than kernel "
            f"size (kT: {k[0]} kH: {k[1]} kW: {k[2]})"
        )
    extra = [ceil_extra(spatial[i], k[i], s[i], p[i]) for i in range(3)] if ceil_mode else [0, 0, 0]
    if not any(extra) and divisor_override is None:
        out = ops.AvgPool3d.apply(input, kernel=k, stride=s, padding=p, count_include_pad=count_include_pad)
        return _unbatch(out, unbatched)
    # window sums over the zero-padded input (partial windows included), divided by PyTorch's divisors
    x = ops.pad(input, (p[2], p[2] + extra[2], p[1], p[1] + extra[1], p[0], p[0] + extra[0]))
    sums = ops.AvgPool3d.apply(x, kernel=k, stride=s, padding=(0, 0, 0), count_include_pad=True)
    if divisor_override is not None:
        div = np.full(sums.shape[2:], float(divisor_override))
    else:
        dz, dh, dw = (avg_divisor_axis(spatial[i], k[i], s[i], p[i], sums.shape[2 + i], count_include_pad)
                      for i in range(3))
        div = dz[:, None, None] * dh[None, :, None] * dw[None, None, :]
    scale = (k[0] * k[1] * k[2]) / div
    out = sums * Tensor._wrap(xp_for(input.device).asarray(scale.astype(input.dtype)), device=input.device)
    return _unbatch(out, unbatched)


def _adaptive_size3(fn: str, input: Tensor, output_size) -> tuple:
    """The (od, oh, ow) of an adaptive pool (``None`` keeps that input size), checked as in PyTorch."""
    spatial = tuple(input.shape[2:])
    if 0 in input.shape[1:]:
        dim = input.shape.index(0, 1)
        raise ValueError(
            f"{fn}(): Expected input to have non-zero size for non-batch dimensions, but input has sizes "
            f"{list(input.shape)} with dimension {dim} being empty"
        )
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 3:
            raise ValueError(f"{fn}: output_size must be 3, got {len(output_size)} values ({output_size!r})")
        output_size = tuple(n if o is None else o for o, n in zip(output_size, spatial))
    out = triple(output_size, "output_size", fn)
    if min(out) < 0:
        raise ValueError(f"{fn}: elements of output_size must be greater than or equal to 0 but received "
                         f"{{{', '.join(map(str, out))}}}")
    return out


def _along(x: Tensor, axis: int, m: np.ndarray) -> Tensor:
    """Apply the (n_out, n_in) matrix ``m`` along ``axis`` of x (a matmul with the axis moved last)."""
    perm = [i for i in range(x.ndim) if i != axis] + [axis]
    inv = list(np.argsort(perm))
    mt = Tensor._wrap(xp_for(x.device).asarray(np.ascontiguousarray(m.T)), device=x.device)
    return (x.permute(*perm) @ mt).permute(*inv)


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
    """Average over PyTorch's adaptive bins [floor(i n/o), ceil((i+1) n/o)) per axis (separable).

        >>> F.adaptive_avg_pool3d(tr.randn(2, 8, 5, 6, 7), 1).shape
        (2, 8, 1, 1, 1)
    """
    check_float("adaptive_avg_pool3d", input=input)
    input, unbatched = _batched("adaptive_avg_pool3d", input)
    out = _adaptive_size3("adaptive_avg_pool3d", input, output_size)
    spatial = tuple(input.shape[2:])
    if 0 in out:  # as PyTorch: an empty output, and a zero gradient
        res = input[:, :, :0, :0, :0].reshape(input.shape[:2] + out)
    elif out == (1, 1, 1):
        res = input.mean(dim=(2, 3, 4), keepdim=True)
    elif all(n % o == 0 for n, o in zip(spatial, out)):
        res = ops.AvgPool3d.apply(input, kernel=tuple(n // o for n, o in zip(spatial, out)),
                                  stride=tuple(n // o for n, o in zip(spatial, out)), padding=(0, 0, 0),
                                  count_include_pad=True)
    else:
        res = input
        for i in range(3):
            if out[i] != spatial[i]:
                res = _along(res, 2 + i, adaptive_matrix(spatial[i], out[i], input.dtype))
    return _unbatch(res, unbatched)


def adaptive_max_pool3d(input: Tensor, output_size) -> Tensor:
    """Max over PyTorch's adaptive bins (bins may overlap); evenly divided sizes are one max_pool3d."""
    check_float("adaptive_max_pool3d", input=input)
    input, unbatched = _batched("adaptive_max_pool3d", input)
    out = _adaptive_size3("adaptive_max_pool3d", input, output_size)
    spatial = tuple(input.shape[2:])
    if 0 in out:
        return _unbatch(input[:, :, :0, :0, :0].reshape(input.shape[:2] + out), unbatched)
    if all(n % o == 0 for n, o in zip(spatial, out)):
        k = tuple(n // o for n, o in zip(spatial, out))
        return _unbatch(ops.MaxPool3d.apply(input, kernel=k, stride=k, padding=(0, 0, 0), dilation=(1, 1, 1)),
                        unbatched)

    def bins(n, o):
        return [((i * n) // o, -((-(i + 1) * n) // o)) for i in range(o)]

    planes = []
    for z0, z1 in bins(spatial[0], out[0]):
        rows = []
        for h0, h1 in bins(spatial[1], out[1]):
            row = [input[:, :, z0:z1, h0:h1, w0:w1].flatten(2).max(2).values
                   for w0, w1 in bins(spatial[2], out[2])]
            rows.append(_stack(row, dim=2))
        planes.append(_stack(rows, dim=2))
    return _unbatch(_stack(planes, dim=2), unbatched)
