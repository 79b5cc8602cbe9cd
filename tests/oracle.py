"""The test oracle: one helper, :func:`check_op`, that checks an op three ways.

1. forward against PyTorch (when installed) on the same random inputs;
2. the gradient of ``(out * r).sum()`` for a fixed random projection ``r`` against PyTorch's;
3. :func:`tinygrad_rad.gradcheck` (float64 central differences) - needs no torch, so an op test still
   means something on a machine without PyTorch.

    >>> check_op(lambda x: x.exp(), None, [(2, 3)])                 # same lambda runs on both
    >>> check_op(lambda a, b: a @ b, None, [(2, 3), (3, 4)], dtype="float32")
    >>> check_op(lambda x: F.conv2d(x, w), lambda x: TF.conv2d(x, w_t), [(1, 2, 5, 5)])

Inputs are given as shapes (filled with standard normals; ``positive=True`` maps them to
``|x| + 0.5``) or as NumPy arrays (floating arrays get ``requires_grad``; integer/bool arrays are
passed as plain tensors, e.g. class targets). Sizes should stay small: gradcheck runs two forwards per
input element.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

import tinygrad_rad as tr

try:  # PyTorch is only the oracle; everything else still runs without it
    import torch
except ImportError:  # pragma: no cover - exercised on machines without torch
    torch = None

HAS_TORCH = torch is not None

TOL = {"float64": (1e-10, 1e-12), "float32": (1e-4, 1e-5)}  # (rtol, atol)


def backend_ready(device: str) -> bool:
    """True when the device's kernel module imports (the CUDA backend may not exist yet)."""
    try:
        tr.device.backend(device)
    except Exception:
        return False
    return True


def make_arrays(specs, *, positive: bool = False, seed: int = 0, low=None, high=None) -> list:
    """Shapes -> random float64 arrays (``positive``: |x| + 0.5; ``low``/``high``: uniform); arrays pass."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        if isinstance(s, np.ndarray):
            out.append(s)
            continue
        shape = tuple(s)
        if low is not None:
            a = rng.uniform(low, high, size=shape)
        else:
            a = rng.standard_normal(shape)
            if positive:
                a = np.abs(a) + 0.5
        out.append(np.asarray(a, dtype=np.float64))
    return out


def _is_float(a) -> bool:
    return a.dtype.kind == "f"


def _as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _projected(outs, projections):
    total = None
    for o, r in zip(outs, projections):
        if r is None:
            continue
        term = (o * r).sum()
        total = term if total is None else total + term
    return total


def _tr_inputs(arrays, dtype, device, grad):
    ts = []
    for a in arrays:
        if _is_float(a):
            ts.append(tr.Tensor(a.astype(dtype), device=device, requires_grad=grad))
        else:
            ts.append(tr.Tensor(a.copy(), device=device))
    return ts


def check_op(tr_fn, torch_fn=None, inputs=(), *, dtype: str = "float64", grad: bool = True,
             device: str = "cpu", positive: bool = False, low=None, high=None, rtol=None, atol=None,
             gradcheck: bool = True, gc_atol: float = 1e-5, gc_rtol: float = 1e-3, seed: int = 0):
    """Check ``tr_fn`` (tinygrad_rad) against ``torch_fn`` (PyTorch; ``None`` = the same callable).

    Returns the tinygrad_rad output(s) so a test can assert more on them.
    """
    with serial_kernels():
        return _check_op(tr_fn, torch_fn, inputs, dtype=dtype, grad=grad, device=device, positive=positive,
                         low=low, high=high, rtol=rtol, atol=atol, gradcheck=gradcheck, gc_atol=gc_atol,
                         gc_rtol=gc_rtol, seed=seed)


def _check_op(tr_fn, torch_fn, inputs, *, dtype, grad, device, positive, low, high, rtol, atol, gradcheck,
              gc_atol, gc_rtol, seed):
    torch_fn = tr_fn if torch_fn is None else torch_fn
    arrays = make_arrays(inputs, positive=positive, seed=seed, low=low, high=high)
    d_rtol, d_atol = TOL[dtype]
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    rng = np.random.default_rng(seed + 1)

    # ---- tinygrad_rad forward + backward of the projected output
    ts = _tr_inputs(arrays, dtype, device, grad)
    out = tr_fn(*ts)
    outs = _as_list(out)
    differentiable = [o for o in outs if _is_float(o.data)]
    projections = [rng.standard_normal(o.shape) if _is_float(o.data) else None for o in outs]
    do_grad = grad and any(_is_float(a) for a in arrays) and any(o.requires_grad for o in differentiable)
    if grad and differentiable:
        assert do_grad, "the op's output does not require grad although its inputs do"
    if do_grad:
        tr_proj = [None if r is None else tr.Tensor(r.astype(dtype), device=device) for r in projections]
        _projected(outs, tr_proj).backward()

    # ---- PyTorch: the same inputs, the same projection
    if HAS_TORCH:
        tdt = getattr(torch, dtype)
        tts = [torch.tensor(a, dtype=tdt, requires_grad=grad) if _is_float(a) else torch.from_numpy(a.copy())
               for a in arrays]
        tout = _as_list(torch_fn(*tts))
        assert len(tout) == len(outs), f"{len(outs)} outputs, torch gives {len(tout)}"
        for i, (o, to) in enumerate(zip(outs, tout)):
            got, want = o.numpy(), to.detach().numpy()
            assert got.shape == want.shape, f"output {i}: shape {got.shape}, torch gives {want.shape}"
            if got.dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"forward output {i}")
            else:
                np.testing.assert_array_equal(got, want, err_msg=f"forward output {i}")
        if do_grad:
            t_proj = [None if r is None else torch.tensor(r, dtype=tdt) for r in projections]
            _projected(tout, t_proj).backward()
            for i, (t, tt) in enumerate(zip(ts, tts)):
                if not _is_float(arrays[i]):
                    continue
                want = tt.grad.numpy() if tt.grad is not None else np.zeros(tt.shape)
                got = t.grad.numpy() if t.grad is not None else np.zeros(t.shape)
                # float32 gradients pass through more roundings than the forward: loosen by 10x
                g_rtol, g_atol = (rtol, atol) if dtype == "float64" else (rtol * 10, atol * 10)
                np.testing.assert_allclose(got, want, rtol=g_rtol, atol=g_atol,
                                           err_msg=f"gradient of input {i}")

    # ---- float64 finite differences (no torch needed)
    if gradcheck and do_grad:
        ts64 = _tr_inputs(arrays, "float64", "cpu", True)

        def f(*xs):
            o = _as_list(tr_fn(*xs))
            fl = [x for x in o if _is_float(x.data)]
            if len(fl) == 1:
                return fl[0]
            return tr.cat([x.reshape(-1) for x in fl])

        tr.gradcheck(f, ts64, atol=gc_atol, rtol=gc_rtol)
    return out


@contextmanager
def serial_kernels():
    """Run Numba kernels on one thread: op tests (gradcheck above all) make hundreds of tiny calls, and
    on a loaded machine waking the parallel threads costs ~100x the work itself. The kernels run the same
    ``prange`` code on one thread; multi-threaded runs are covered by the e2e and kernel tests."""
    try:
        import numba

        prev = numba.get_num_threads()
        numba.set_num_threads(1)
    except Exception:  # pragma: no cover - numba without a threading layer
        yield
        return
    try:
        yield
    finally:
        numba.set_num_threads(prev)
