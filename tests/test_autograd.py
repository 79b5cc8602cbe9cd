"""The autodiff core: accumulation, long chains, graph freeing, no_grad, detach, retain_grad, diamonds."""

from __future__ import annotations

import numpy as np
import pytest
from oracle import HAS_TORCH

import tinygrad_rad as tr

if HAS_TORCH:
    import torch


def test_grads_accumulate_until_reset():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0])  # added, not replaced
    x.zero_grad()
    assert x.grad is None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    x.grad = None
    (x * x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])


def test_leaf_grad_does_not_alias_the_seed():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    g = np.ones(2, dtype=np.float32)
    x.backward(gradient=tr.tensor(g))
    x.backward(gradient=tr.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_long_chain_has_no_recursion_limit():
    x = tr.tensor([0.5], dtype=tr.float64, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**10_000], rtol=1e-9)


def test_graph_is_freed_and_second_backward_raises():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    assert y.grad_fn.freed
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_second_backward_through_a_freed_intermediate_raises():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    (h * 2).sum().backward()
    with pytest.raises(RuntimeError, match="second time"):
        (h * 3).sum().backward()  # new head, but h's graph was freed


def test_freeing_drops_saved_arrays():
    x = tr.randn(3, requires_grad=True)
    y = x.exp()
    ctx = y.grad_fn
    assert hasattr(ctx, "out")
    y.sum().backward()
    assert not hasattr(ctx, "out") and not hasattr(ctx, "parents")
    # ...but the structure stays, as in PyTorch's grad_fn.next_functions: the input's shape and dtype
    (edge,) = ctx.edges()
    assert edge.fn is None and edge.shape == (3,) and edge.dtype == np.float32 and edge.leaf() is x
    assert ctx.next_functions == ((None, 0),)


def test_freed_graph_keeps_ops_parents_and_shapes():
    x = tr.randn(2, 3, requires_grad=True)
    w = tr.randn(4, 3, requires_grad=True)
    loss = (x @ w.T).relu().sum()
    before = _structure(loss.grad_fn)
    loss.backward()
    assert loss.grad_fn.freed
    assert _structure(loss.grad_fn) == before
    matmul = ("MatMul", [(None, (2, 3)), (("Permute", [(None, (4, 3))]), (3, 4))])
    assert before == ("Sum", [(("Relu", [(matmul, (2, 4))]), (2, 4))])


def _structure(fn):
    """(op name, [(input structure or None for a leaf, input shape)]) -- recursive, for small graphs."""
    return (fn.name, [(_structure(e.fn) if e.fn is not None else None, e.shape) for e in fn.edges()])


def test_freed_graph_holds_no_intermediate_arrays():
    import gc
    import weakref

    x = tr.randn(8, requires_grad=True)
    h = x.exp()
    ref = weakref.ref(h)
    loss = (h * 2).sum()
    del h
    loss.backward()
    gc.collect()
    assert ref() is None  # the freed graph remembers h's shape, not h itself


def test_post_accumulate_grad_hook_sees_the_accumulated_grad():
    w = tr.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    h = w.register_post_accumulate_grad_hook(lambda p: seen.append((p is w, p.grad.numpy().copy())))
    (w * w).sum().backward()  # two uses of w: the hook runs once, after both were added
    assert len(seen) == 1 and seen[0][0]
    np.testing.assert_allclose(seen[0][1], [2.0, 4.0])
    (w * 3).sum().backward()
    np.testing.assert_allclose(seen[1][1], [5.0, 7.0])  # sees .grad after +=
    h.remove()
    (w * 3).sum().backward()
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2).register_post_accumulate_grad_hook(lambda p: None)
    with pytest.raises(RuntimeError, match="does not require grad"):
        tr.ones(2).register_post_accumulate_grad_hook(lambda p: None)


def test_post_accumulate_grad_hook_order_follows_the_backward_walk():
    # DDP-style bucketing relies on the hooks firing as soon as each leaf's gradient is complete
    a = tr.tensor([1.0], requires_grad=True)
    b = tr.tensor([2.0], requires_grad=True)
    order = []
    a.register_post_accumulate_grad_hook(lambda p: order.append("a"))
    b.register_post_accumulate_grad_hook(lambda p: order.append("b"))
    ((a * 2).exp() * b).sum().backward()
    assert sorted(order) == ["a", "b"]
    if HAS_TORCH:
        ta = torch.tensor([1.0], requires_grad=True)
        tb = torch.tensor([2.0], requires_grad=True)
        t_order = []
        ta.register_post_accumulate_grad_hook(lambda p: t_order.append("a"))
        tb.register_post_accumulate_grad_hook(lambda p: t_order.append("b"))
        ((ta * 2).exp() * tb).sum().backward()
        assert sorted(t_order) == sorted(order)


def test_no_grad_context_and_decorator():
    x = tr.randn(3, requires_grad=True)
    with tr.no_grad():
        y = x * 2 + 1
        assert not tr.is_grad_enabled()
        with tr.enable_grad():
            z = x * 2
    assert tr.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None

    @tr.no_grad()
    def f(t):
        """doc"""
        return t * t

    out = f(x)
    assert not out.requires_grad and out.grad_fn is None
    assert f.__doc__ == "doc" and f.__name__ == "f"
    assert tr.is_grad_enabled()


def test_no_grad_restores_on_exception():
    with pytest.raises(KeyError):
        with tr.no_grad():
            raise KeyError("boom")
    assert tr.is_grad_enabled()


def test_detach():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    y = (x * d).sum()  # d is a constant: dy/dx = d
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_retain_grad():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    other = x * 4  # an intermediate that did not ask keeps grad None
    (h * h + other).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())
    assert other.grad is None
    np.testing.assert_allclose(x.grad.numpy(), 18 * x.numpy() + 4)


def test_diamond_graph():
    x = tr.tensor([1.5, -0.5], dtype=tr.float64, requires_grad=True)
    a = x * 2
    b = a.exp()
    c = a * a
    y = (b + c).sum()  # y = e^{2x} + 4x^2
    y.backward()
    xv = x.numpy()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(2 * xv) + 8 * xv)


def test_tensor_used_twice_in_one_op():
    x = tr.tensor([3.0], requires_grad=True)
    (x * x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0])
    x.grad = None
    (x + x + x).backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0])


def test_backward_with_gradient_argument():
    x = tr.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * x
    y.backward(gradient=tr.tensor([[1.0, 0.0], [0.5, 2.0]]))
    np.testing.assert_allclose(x.grad.numpy(), [[2.0, 0.0], [3.0, 16.0]])
    with pytest.raises(ValueError, match=r"gradient has shape \(3,\), expected \(2, 2\)"):
        (x * 2).backward(gradient=tr.ones(3))


def test_int_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        tr.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="int64"):
        tr.arange(3).requires_grad_()


def test_only_inputs_that_need_grad_get_one():
    a = tr.tensor([1.0, 2.0], requires_grad=True)
    b = tr.tensor([3.0, 4.0])
    (a * b).sum().backward()
    assert b.grad is None
    np.testing.assert_allclose(a.grad.numpy(), [3.0, 4.0])


def test_gradient_of_unused_branch_is_untouched():
    a = tr.tensor([1.0], requires_grad=True)
    b = tr.tensor([1.0], requires_grad=True)
    _ = b * 2
    (a * 2).sum().backward()
    assert b.grad is None


def test_is_leaf_and_requires_grad_propagation():
    x = tr.randn(2, requires_grad=True)
    c = tr.randn(2)
    y = x + c
    assert x.is_leaf and not y.is_leaf
    assert y.requires_grad
    assert not (c * 2).requires_grad


def test_cast_and_clone_are_differentiable():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    y = x.double() * x.clone().double()
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def test_retain_graph_allows_a_second_backward():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    y = (h * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    np.testing.assert_allclose(first, np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0])), rtol=1e-6)
    y.backward()  # graph kept: gradients add up, then the graph is freed
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_gradient_flows_across_devices(device):
    x = tr.tensor([1.0, 2.0, 3.0], requires_grad=True)  # a cpu leaf
    y = x.to(device)
    assert y.device == device and y.requires_grad
    z = (y * y).sum().to("cpu")
    z.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_gradient_flows_across_dtypes():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(tr.float64) * tr.tensor(np.array([3.0, 4.0]))
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


@pytest.mark.parametrize("dt", [tr.float64, "float64", "double", np.float64])
def test_to_accepts_every_dtype_spelling(dt):
    x = tr.ones(2, requires_grad=True)
    y = x.to(dt)
    assert y.dtype == np.float64 and y.device == "cpu" and y.requires_grad


def test_register_hook_sees_and_replaces_the_gradient():
    x = tr.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    seen = []
    handle = h.register_hook(lambda g: seen.append(g.numpy().copy()))
    h.register_hook(lambda g: g * 0.5)  # halves what flows on to x
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * h.numpy())  # the full gradient, summed over all uses
    np.testing.assert_allclose(x.grad.numpy(), 0.5 * 18 * x.numpy())
    if HAS_TORCH:
        tx = torch.tensor([1.0, 2.0], requires_grad=True)
        th = tx * 3
        th.register_hook(lambda g: g * 0.5)
        (th * th).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    handle.remove()
    x.grad = None
    h2 = x * 3
    h2.register_hook(lambda g: g * 2)
    h2.sum().backward()
    assert len(seen) == 1  # the removed hook did not run again (it was on h, not h2)
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_hook_on_a_leaf_runs_before_accumulation():
    w = tr.tensor([1.0, -1.0], requires_grad=True)
    w.register_hook(lambda g: g.clamp(-0.1, 0.1))  # gradient clipping by hook
    (w * 5).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.1, 0.1])
    with pytest.raises(RuntimeError, match="does not require grad"):
        tr.ones(2).register_hook(lambda g: g)


# ------------------------------------------------------------------- version counters (issue 12)
INPLACE = "one of the variables needed for gradient computation has been modified by an inplace operation"


def test_inplace_change_of_a_saved_input_under_no_grad_raises():
    x = tr.randn(3, requires_grad=True)
    y = (x * x).sum()
    with tr.no_grad():
        x[0] = 5.0
    assert x._version == 1
    msg = INPLACE + r".*shape \(3,\) that is input 0 of Mul is at version 1; expected version 0"
    with pytest.raises(RuntimeError, match=msg):
        y.backward()
    if HAS_TORCH:
        tx = torch.randn(3, requires_grad=True)
        ty = (tx * tx).sum()
        with torch.no_grad():
            tx[0] = 5.0
        with pytest.raises(RuntimeError, match=INPLACE):
            ty.backward()


def test_inplace_change_of_an_input_that_backward_does_not_need_is_fine():
    x = tr.randn(3, requires_grad=True)
    y = (x + 1).sum()  # Add saves nothing: its gradient does not depend on x
    with tr.no_grad():
        x[0] = 5.0
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_optimizer_step_between_two_backwards_of_a_retained_graph_raises(opt_name):
    from tinygrad_rad import nn, optim

    tr.manual_seed(0)
    lin = nn.Linear(3, 2)
    opt = getattr(optim, opt_name)(lin.parameters(), lr=0.1)
    loss = lin(tr.randn(4, 3, requires_grad=True)).relu().sum()
    loss.backward(retain_graph=True)
    opt.step()
    assert lin.weight._version == 1
    with pytest.raises(RuntimeError, match=INPLACE + ".*input 1 of MatMul"):  # x @ w.T: w.T is a view of w
        loss.backward()
    if HAS_TORCH:
        tl = torch.nn.Linear(3, 2)
        topt = getattr(torch.optim, opt_name)(tl.parameters(), lr=0.1)
        tloss = tl(torch.randn(4, 3, requires_grad=True)).relu().sum()
        tloss.backward(retain_graph=True)
        topt.step()
        with pytest.raises(RuntimeError, match=INPLACE):
            tloss.backward()


def test_inplace_change_of_a_saved_output_through_detach_raises():
    x = tr.randn(3, requires_grad=True)
    y = x.exp()  # Exp saves its output
    d = y.detach()  # the same memory, the same version counter
    d[1] = 0.0
    with pytest.raises(RuntimeError, match=INPLACE + ".*the output of Exp"):
        y.sum().backward()


def test_views_share_the_version_counter():
    x = tr.zeros(2, 3)
    v = x.reshape(3, 2)
    row = x[0]
    row[1] = 7.0  # writes into x
    assert x.numpy()[0, 1] == 7.0 and x._version == v._version == row._version == 1
    assert (x + 1)._version == 0  # a new array starts at 0


# ------------------------------------------------------------------------ detect_anomaly (issue 12)
def test_detect_anomaly_names_the_first_op_with_a_non_finite_gradient():
    x = tr.tensor([0.0, 1.0], requires_grad=True)
    with tr.autograd.detect_anomaly():
        y = (x.sqrt() * 2).sum()  # d sqrt/dx = inf at 0: Sqrt's backward is the first to produce inf
        with np.errstate(divide="ignore"):
            msg = r"Function 'Sqrt' returned inf values in its 0th .*inputs \(2,\) float32.*test_autograd"
            with pytest.raises(RuntimeError, match=msg):
                y.backward()
    z = tr.tensor([-1.0, 4.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        with tr.autograd.detect_anomaly():
            w = (z.sqrt() * 3).sum()  # sqrt(-1) = nan, and its backward g / (2 sqrt) too
            with pytest.raises(RuntimeError, match="Function 'Sqrt' returned nan values"):
                w.backward()
        (z.sqrt() * 3).sum().backward()  # outside detect_anomaly: no check, the nan lands in .grad
    assert np.isnan(z.grad.numpy()[0]) and z.grad.numpy()[1] == 0.75
