"""gradcheck itself (passes on right ops, catches a wrong one), the op trace, and the DOT graph."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F


def _x(*shape, seed=0):
    return tr.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=tr.float64, requires_grad=True)


def test_gradcheck_passes_on_correct_ops():
    x, w = _x(1, 2, 4, 4), _x(3, 2, 3, 3, seed=1)
    report = tr.gradcheck(lambda x, w: F.conv2d(x, w, padding=1).tanh(), [x, w])
    assert len(report) == 2 and all(r["ok"] for r in report)
    assert report[0]["shape"] == (1, 2, 4, 4)
    assert max(r["max_abs_err"] for r in report) < 1e-7


def test_gradcheck_reports_none_for_inputs_without_grad():
    a = _x(3)
    c = tr.tensor(np.ones(3), dtype=tr.float64)
    report = tr.gradcheck(lambda a, c: a * c + a.exp(), [a, c])
    assert report[0]["ok"] and report[1] is None


class WrongSquare(tr.Function):
    """x^2 with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return (3 * self.x * g,)  # wrong on purpose: d(x^2)/dx = 2x


class HalfWrongMul(tr.Function):
    """a * b whose gradient for b is wrong (a right one for a): the report must say which input."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return g * self.b, g * self.a * 1.5


def test_gradcheck_fails_on_wrong_backward():
    x = _x(2, 3)
    with pytest.raises(tr.GradcheckError, match=r"input 0 \(2, 3\).*FAIL") as info:
        tr.gradcheck(lambda x: WrongSquare.apply(x), [x])
    report = info.value.report
    assert report[0]["ok"] is False and report[0]["max_abs_err"] > 0.1


def test_gradcheck_per_input_report():
    a, b = _x(3, seed=1), _x(3, seed=2)
    with pytest.raises(tr.GradcheckError) as info:
        tr.gradcheck(lambda a, b: HalfWrongMul.apply(a, b), [a, b])
    msg = str(info.value)
    assert re.search(r"input 0 \(3,\).* ok", msg) and re.search(r"input 1 \(3,\).* FAIL", msg)
    assert [r["ok"] for r in info.value.report] == [True, False]
    # raise_exception=False returns the same report instead
    report = tr.gradcheck(lambda a, b: HalfWrongMul.apply(a, b), [a, b], raise_exception=False)
    assert [r["ok"] for r in report] == [True, False]


def test_gradcheck_refuses_float32():
    x = tr.randn(3, requires_grad=True)
    with pytest.raises(TypeError, match="float32.*float64"):
        tr.gradcheck(lambda x: x * 2, [x])


def test_gradcheck_leaves_inputs_unchanged():
    x = _x(2, 2)
    before = x.numpy().copy()
    tr.gradcheck(lambda x: (x * x).sum(), [x])
    np.testing.assert_array_equal(x.numpy(), before)


# ---------------------------------------------------------------------------------------- trace
TRACE_LINE = re.compile(r"^(fwd|bwd) (\w+)\s+in (.*) -> (.*?)\s+(\d+\.\d+) ms(  \(first call: [^)]*\))?$")


def test_trace_prints_op_shapes_dtype_and_time():
    buf = io.StringIO()
    x = tr.randn(2, 3, requires_grad=True)
    w = tr.randn(4, 3, requires_grad=True)
    with tr.trace(file=buf):
        y = F.linear(x, w).relu().sum()
        y.backward()
    lines = buf.getvalue().strip().splitlines()
    parsed = [TRACE_LINE.match(line) for line in lines]
    assert all(parsed), lines
    kinds = [(m.group(1), m.group(2)) for m in parsed]
    assert ("fwd", "MatMul") in kinds and ("fwd", "Relu") in kinds and ("fwd", "Sum") in kinds
    assert ("bwd", "MatMul") in kinds and ("bwd", "Relu") in kinds
    mm = next(m for m in parsed if m.group(1) == "fwd" and m.group(2) == "MatMul")
    assert mm.group(3) == "(2, 3) float32, (3, 4) float32" and mm.group(4).strip() == "(2, 4) float32"
    # forwards come first, then the backward walk in reverse order
    first_bwd = [k for k, _ in kinds].index("bwd")
    assert all(k == "fwd" for k, _ in kinds[:first_bwd]) and all(k == "bwd" for k, _ in kinds[first_bwd:])
    # outside the context nothing is printed
    buf2 = io.StringIO()
    with tr.trace(file=buf2):
        pass
    (x * 2).sum().backward()
    assert buf2.getvalue() == ""


def test_tgr_debug_environment_variable():
    code = (
        "import tinygrad_rad as tr\n"
        "x = tr.ones(2, 2, requires_grad=True)\n"
        "(x.exp() * 3).sum().backward()\n"
    )
    env = dict(os.environ, TGR_DEBUG="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if TRACE_LINE.match(ln)]
    assert any(ln.startswith("fwd Exp") and "(2, 2) float32" in ln for ln in lines), res.stderr
    assert any(ln.startswith("bwd Exp") for ln in lines), res.stderr


def test_trace_marks_the_first_call_of_an_op_class():
    # the first call of an op in a process may include a kernel compile: the trace line says so
    code = (
        "import tinygrad_rad as tr\n"
        "x = tr.ones(2, 2, requires_grad=True)\n"
        "for _ in range(2):\n"
        "    (x.exp() * 3).sum().backward()\n"
    )
    env = dict(os.environ, TGR_DEBUG="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    exp_fwd = [ln for ln in res.stderr.splitlines() if ln.startswith("fwd Exp")]
    exp_bwd = [ln for ln in res.stderr.splitlines() if ln.startswith("bwd Exp")]
    assert len(exp_fwd) == 2 and len(exp_bwd) == 2, res.stderr
    for first, second in (exp_fwd, exp_bwd):
        assert TRACE_LINE.match(first) and TRACE_LINE.match(second)
        assert first.endswith("(first call: may include one-time kernel load/compile)")
        assert "first call" not in second


# ------------------------------------------------------------------------------------------ viz
def test_to_dot_draws_the_graph():
    viz = pytest.importorskip("tinygrad_rad.viz")
    x = tr.randn(2, 3, requires_grad=True)
    w = tr.randn(4, 3, requires_grad=True)
    y = F.linear(x, w).relu().sum()
    dot = viz.to_dot(y, names={w: "weight"})
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for op in ("MatMul", "Relu", "Sum", "Permute"):
        assert f'label="{op}"' in dot, op
    assert "weight" in dot and "(4, 3) float32" in dot and "requires_grad" in dot
    # every edge joins two declared nodes
    nodes = set(re.findall(r"^\s+(\w+) \[", dot, re.M))
    edges = re.findall(r"^\s+(\w+) -> (\w+);", dot, re.M)
    assert edges and all(a in nodes and b in nodes for a, b in edges)
    y.backward()
    assert "(freed)" in viz.to_dot(y)


def test_to_dot_after_backward_draws_the_whole_graph():
    # the README's tour draws the graph after backward: freeing the saved arrays must keep the structure
    viz = pytest.importorskip("tinygrad_rad.viz")
    x = tr.randn(2, 3, requires_grad=True)
    w = tr.randn(4, 3, requires_grad=True)
    y = F.linear(x, w).relu().sum()
    before = viz.to_dot(y, names={w: "weight"})
    y.backward()
    after = viz.to_dot(y, names={w: "weight"})
    for dot in (before, after):
        for op in ("MatMul", "Relu", "Sum", "Permute"):
            assert re.search(rf'label="{op}( \(freed\)", style=dashed|")', dot), (op, dot)
        assert "weight" in dot and "(4, 3) float32" in dot and "(2, 4) float32" in dot
        nodes = set(re.findall(r"^\s+(\w+) \[", dot, re.M))
        edges = re.findall(r"^\s+(\w+) -> (\w+);", dot, re.M)
        assert all(a in nodes and b in nodes for a, b in edges)
    assert after.count("(freed)") == 4 and "(freed)" not in before
    # same nodes and edges before and after, only the freed marks differ
    assert len(re.findall(r" -> ", before)) == len(re.findall(r" -> ", after))
    assert after.replace(' (freed)", style=dashed', '"') == before


def test_save_graph_writes_dot_atomically(tmp_path):
    viz = pytest.importorskip("tinygrad_rad.viz")
    x = tr.randn(2, requires_grad=True)
    out = viz.save_graph((x * 2).sum(), tmp_path / "g.dot")
    assert out.read_text().startswith("digraph")
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"]
