"""Chapter 1 exercises: Sigmoid and Exp as Functions, an iterative topological sort."""

from __future__ import annotations

import numpy as np

from . import Exercise
from ._util import close, gradcheck_fn, is_function_class, rng


def test_sigmoid(Sigmoid) -> None:
    import tinygrad_rad as tr

    is_function_class(Sigmoid, "Sigmoid")
    a = np.array([-1000.0, -30.0, -1.0, 0.0, 0.5, 30.0, 1000.0])
    with np.errstate(over="raise"):
        y = Sigmoid.apply(tr.tensor(a, dtype=tr.float64)).numpy()
    close(y, 0.5 * (1 + np.tanh(a / 2)), "Sigmoid forward")
    gradcheck_fn(lambda x: Sigmoid.apply(x), rng(1).standard_normal((3, 4)) * 3)


def test_exp(Exp) -> None:
    import tinygrad_rad as tr

    is_function_class(Exp, "Exp")
    a = rng(2).standard_normal((2, 5))
    close(Exp.apply(tr.tensor(a, dtype=tr.float64)).numpy(), np.exp(a), "Exp forward")
    gradcheck_fn(lambda x: Exp.apply(x), a)


def test_toposort(toposort) -> None:
    import tinygrad_rad as tr

    a = tr.tensor(rng(3).standard_normal((3,)), requires_grad=True)
    b = tr.tensor(rng(4).standard_normal((3,)), requires_grad=True)
    c = a * b
    d = c + a  # a is used twice, c is used twice: a diamond
    e = d * c
    root = e.sum()
    order = list(toposort(root))
    ids = [id(t) for t in order]
    expect = {id(t) for t in (a, b, c, d, e, root)}
    if len(ids) != len(set(ids)):
        raise AssertionError("a tensor appears more than once")
    if set(ids) != expect:
        raise AssertionError(f"expected the 6 tensors of the graph, got {len(ids)}")
    if ids[-1] != id(root):
        raise AssertionError("root must come last")
    pos = {i: k for k, i in enumerate(ids)}
    for t in order:
        if t._ctx is not None:
            for p in t._ctx.parents:
                if pos[id(p)] > pos[id(t)]:
                    raise AssertionError("a tensor comes before one of its inputs")
    # deep chain: no recursion limit
    x = tr.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    if len(list(toposort(y))) != 3001:
        raise AssertionError("a 3000-op chain should give 3001 tensors")


EXERCISES = [
    Exercise("Sigmoid", "Sigmoid as a Function (stable forward, backward sigma (1 - sigma))", test_sigmoid,
             "tinygrad_rad.ops:Sigmoid"),
    Exercise("Exp", "Exp as a Function (backward reuses the saved output)", test_exp, "tinygrad_rad.ops:Exp"),
    Exercise("toposort", "iterative topological sort of the graph behind a tensor", test_toposort,
             "tinygrad_rad.autograd:toposort"),
]
