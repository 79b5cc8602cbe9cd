"""Matrix multiplication (batched, broadcasting): the device's GEMM kernel forward and backward."""

from __future__ import annotations

import numpy as np

from ..autograd import Function
from ..device import backend, xp_of
from .elementwise import unbroadcast


class MatMul(Function):
    """``a @ b`` for a of shape (..., n, k) and b of shape (..., k, m) with broadcast batch dims."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return backend(self.device).matmul(a, b)

    def backward(self, g):
        # C = A B  =>  dA = G B^T, dB = A^T G  (summed over broadcast batch dims)
        bk = backend(self.device)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(bk.matmul(g, self.b.swapaxes(-1, -2)), self.a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(bk.matmul(self.a.swapaxes(-1, -2), g), self.b.shape)
        return ga, gb


def matmul(a, b):
    """``a @ b`` with NumPy/PyTorch rules for 1-D operands (a vector is promoted, then squeezed)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtypes differ ({a.dtype} and {b.dtype}); cast one with .to(dtype)")
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned ({a2.shape[-1]} != {b2.shape[-2]})"
        )
    try:
        np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(
            f"matmul: batch dims of shapes {a.shape} and {b.shape} cannot be broadcast"
        ) from None
    out = MatMul.apply(a2, b2)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out


# ------------------------------------------------------------------------------------- einsum
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Einsum(Function):
    """``einsum(equation, *operands)`` for an explicit equation without ellipsis or broadcasting
    (:func:`einsum` rewrites every equation into that form first)."""

    def forward(self, *arrays, equation: str):
        self.arrays, self.equation = arrays, equation
        return _einsum(equation, *arrays)

    def backward(self, g):
        # out = sum over the non-output letters of prod_k A_k  =>  dA_k = einsum(g, the other operands)
        # to A_k's letters; a letter only A_k has is summed in forward, so its gradient is broadcast
        # (a ones vector); a letter repeated in A_k (a diagonal) gets its gradient on that diagonal only
        xp = xp_of(g)
        ins, out = self.equation.split("->")
        subs = ins.split(",")
        grads = []
        for k, sk in enumerate(subs):
            if not self.needs_input_grad[k]:
                grads.append(None)
                continue
            a = self.arrays[k]
            size = {c: a.shape[i] for i, c in enumerate(sk)}
            terms, ops = [out], [g]
            for j, sj in enumerate(subs):
                if j != k:
                    terms.append(sj)
                    ops.append(self.arrays[j])
            have = set("".join(terms))
            unique = "".join(dict.fromkeys(sk))
            for c in unique:
                if c not in have:
                    terms.append(c)
                    ops.append(xp.ones(size[c], dtype=g.dtype))
            target, fresh = "", iter(c for c in _LETTERS if c not in self.equation)
            seen: set = set()
            for c in sk:
                if c in seen:  # a repeated letter: a fresh one tied to it by an identity matrix
                    f = next(fresh)
                    terms.append(c + f)
                    ops.append(xp.eye(size[c], dtype=g.dtype))
                    c = f
                seen.add(c)
                target += c
            grads.append(_einsum(",".join(terms) + "->" + target, *ops).astype(a.dtype, copy=False))
        return tuple(grads)


def _einsum(eq, *arrays):
    xp = xp_of(arrays[0])
    if xp is np:
        return np.asarray(np.einsum(eq, *arrays, optimize=len(arrays) > 2))
    return xp.einsum(eq, *arrays)  # pragma: no cover - GPU only


def einsum(equation: str, *operands):
    """``einsum("bij,bjk->bik", a, b)`` with PyTorch's rules: ``...`` broadcasts, an implicit output
    (no ``->``) is the letters used once in alphabetical order; operands may also come as one list."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum(): must provide at least one operand")
    eq = equation.replace(" ", "")
    ins, arrow, out = eq.partition("->")
    subs = ins.split(",")
    if len(subs) != len(operands):
        raise ValueError(f"einsum(): {len(subs)} operand subscripts in {equation!r} but "
                         f"{len(operands)} operands")
    for s in subs + [out]:
        bad = [c for c in s.replace("...", "") if c not in _LETTERS]
        if bad:
            raise ValueError(f"einsum(): invalid subscript {bad[0]!r} in {equation!r} "
                             "(letters a-z, A-Z only)")
    # the ellipsis: right-aligned broadcast dims, given fresh letters
    ell_nd = []
    for s, t in zip(subs, operands):
        n = len(s.replace("...", ""))
        if "..." in s:
            ell_nd.append(t.ndim - n)
        elif t.ndim != n:
            raise ValueError(f"einsum(): the subscript {s!r} has {n} letters for an operand of "
                             f"shape {t.shape}")
        else:
            ell_nd.append(0)
        if ell_nd[-1] < 0:
            raise ValueError(f"einsum(): the subscript {s!r} has more letters than the dims of "
                             f"shape {t.shape}")
    nd = max(ell_nd)
    free = [c for c in _LETTERS if c not in eq][:nd]
    ell_shape = [1] * nd
    for s, t, e in zip(subs, operands, ell_nd):
        if e:
            start = s.index("...")
            for i, n in enumerate(t.shape[start:start + e]):
                j = nd - e + i
                if n != 1 and ell_shape[j] not in (1, n):
                    raise ValueError(
                        f"einsum(): the ... dims of the operands do not broadcast ({equation!r})")
                if n != 1:
                    ell_shape[j] = n  # NOTE: not max(): a size 0 broadcasts against 1 too
    new_ops, new_subs = [], []
    for s, t, e in zip(subs, operands, ell_nd):
        if "..." in s:
            start = s.index("...")
            letters = free[nd - e:]
            keep = [i for i in range(e) if not (t.shape[start + i] == 1 and ell_shape[nd - e + i] != 1)]
            if len(keep) != e:  # broadcast size-1 dims: drop them (the letter comes from another operand)
                shape = t.shape[:start] + tuple(t.shape[start + i] for i in keep) + t.shape[start + e:]
                t = t.reshape(shape)
            s = s[:start] + "".join(letters[i] for i in keep) + s[start + 3:]
        new_ops.append(t)
        new_subs.append(s)
    if not arrow:
        counts = {c: "".join(new_subs).count(c) for c in set("".join(subs).replace(".", ""))}
        out = "".join(free) + "".join(sorted(c for c, n in counts.items() if n == 1))
    else:
        if out.count("...") > 1 or any(out.count(c) > 1 for c in out.replace("...", "")):
            raise ValueError(f"einsum(): output subscript {out!r} repeats a letter or the ellipsis")
        out = out.replace("...", "".join(free))  # NOTE: no ... in the output sums the ellipsis dims
    sizes: dict = {}
    for s, t in zip(new_subs, new_ops):
        for c, n in zip(s, t.shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(
                    f"einsum(): the letter {c!r} has size {sizes[c]} in one operand and {n} in another "
                    f"({equation!r}, shapes {[tuple(o.shape) for o in operands]})")
    for c in out:
        if c not in sizes:
            raise ValueError(f"einsum(): output letter {c!r} does not appear in the inputs of {equation!r}")
    dt = new_ops[0].dtype
    if any(t.dtype != dt for t in new_ops):
        raise TypeError(f"einsum(): operands have different dtypes {[str(t.dtype) for t in new_ops]}; "
                        "cast them with .to(dtype)")
    return Einsum.apply(*new_ops, equation=",".join(new_subs) + "->" + out)
