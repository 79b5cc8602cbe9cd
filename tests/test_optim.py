"""Optimizers and LR schedulers against torch.optim on identical float64 params and gradients."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad import nn, optim
from tinygrad_rad.optim import lr_scheduler as sch

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the test oracle) is not installed")

SHAPES = [(3, 4), (4,), (2, 1, 3, 3)]


def _grads(rng, steps):
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def _run_both(make_ours, make_torch, steps=6, groups=False):
    rng = np.random.default_rng(1)
    init = [rng.standard_normal(s) for s in SHAPES]
    grads = _grads(rng, steps)
    ours = [nn.Parameter(tr.tensor(a, dtype=tr.float64)) for a in init]
    theirs = [torch.nn.Parameter(torch.tensor(a, dtype=torch.float64)) for a in init]
    if groups:
        o_opt = make_ours([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.05}])
        t_opt = make_torch([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.05}])
    else:
        o_opt, t_opt = make_ours(ours), make_torch(theirs)
    for g in grads:
        o_opt.zero_grad()
        t_opt.zero_grad()
        for p, a in zip(ours, g):
            p.grad = tr.tensor(a, dtype=tr.float64)
        for p, a in zip(theirs, g):
            p.grad = torch.tensor(a, dtype=torch.float64)
        o_opt.step()
        t_opt.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=1e-12, atol=1e-12)
    return o_opt, ours


OPTIMS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
]


@needs_torch
@pytest.mark.parametrize("name,kw", OPTIMS)
def test_optimizer_matches_torch(name, kw):
    _run_both(lambda ps: getattr(optim, name)(ps, **kw), lambda ps: getattr(torch.optim, name)(ps, **kw))


@needs_torch
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_param_groups_match_torch(name):
    kw = dict(lr=0.1, momentum=0.9) if name == "SGD" else dict(lr=0.01)
    opt, _ = _run_both(lambda ps: getattr(optim, name)(ps, **kw),
                       lambda ps: getattr(torch.optim, name)(ps, **kw), groups=True)
    assert [g["lr"] for g in opt.param_groups] == [kw["lr"], 0.05]


def test_hand_computed_updates():
    """Without the oracle: SGD momentum and Adam's first steps by hand."""
    p = nn.Parameter(tr.tensor([1.0, -2.0], dtype=tr.float64))
    opt = optim.SGD([p], lr=0.1, momentum=0.5, weight_decay=0.1)
    for _ in range(2):
        p.grad = tr.tensor([1.0, 1.0], dtype=tr.float64)
        opt.step()
    # step 1: d = g + 0.1 p = [1.1, 0.8], buf = d, p = [0.89, -2.08]
    # step 2: d = [1.089, 0.792], buf = 0.5 buf + d = [1.639, 1.192], p -= 0.1 buf
    np.testing.assert_allclose(p.numpy(), [0.89 - 0.1639, -2.08 - 0.1192], rtol=1e-12)
    q = nn.Parameter(tr.tensor([1.0, -2.0], dtype=tr.float64))
    adam = optim.Adam([q], lr=0.01, eps=0.0)
    q.grad = tr.tensor([3.0, -0.5], dtype=tr.float64)
    adam.step()  # first bias-corrected step is lr * sign(g)
    np.testing.assert_allclose(q.numpy(), [0.99, -1.99], rtol=1e-12)
    assert adam.state[q]["step"] == 1


def test_skips_params_without_grad_and_zero_grad():
    a, b = nn.Parameter(tr.ones(2)), nn.Parameter(tr.ones(2))
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = tr.ones(2)
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.5, 0.5])
    np.testing.assert_allclose(b.numpy(), [1.0, 1.0])
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert a.grad is None


def test_bad_arguments_are_refused():
    p = nn.Parameter(tr.ones(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="learning rate"):
        optim.Adam([p], lr=-1.0)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)),
                                     ("AdamW", dict(lr=0.01, amsgrad=True))])
def test_optimizer_state_dict_roundtrip(name, kw):
    """Resume from state_dict mid-run and take the same steps as an uninterrupted run."""
    rng = np.random.default_rng(2)
    init = rng.standard_normal((3, 3))
    grads = [rng.standard_normal((3, 3)) for _ in range(6)]

    def run(resume_at=None):
        p = nn.Parameter(tr.tensor(init, dtype=tr.float64))
        opt = getattr(optim, name)([p], **kw)
        for i, g in enumerate(grads):
            if i == resume_at:
                sd = json.loads(json.dumps(opt.state_dict(), default=lambda a: a.tolist()))
                sd["state"] = {
                    int(k): {n: (np.asarray(v) if isinstance(v, list) else v) for n, v in s.items()}
                    for k, s in sd["state"].items()
                }
                p = nn.Parameter(tr.tensor(p.numpy(), dtype=tr.float64))
                opt = getattr(optim, name)([p], lr=123.0)
                opt.load_state_dict(sd)
            p.grad = tr.tensor(g, dtype=tr.float64)
            opt.step()
        return p.numpy(), opt

    full, _ = run()
    resumed, opt = run(resume_at=3)
    np.testing.assert_allclose(resumed, full, rtol=1e-13)
    assert opt.param_groups[0]["lr"] == kw["lr"]


def test_optimizer_load_state_dict_errors():
    p = nn.Parameter(tr.ones(2, 2))
    opt = optim.Adam([p])
    p.grad = tr.ones(2, 2)
    opt.step()
    sd = opt.state_dict()
    q = nn.Parameter(tr.ones(3))
    with pytest.raises(ValueError, match="shape"):
        optim.Adam([q]).load_state_dict(sd)
    with pytest.raises(ValueError, match="1 parameters but the saved group has"):
        bad = {"state": {}, "param_groups": [dict(sd["param_groups"][0], params=[0, 1])]}
        optim.Adam([q]).load_state_dict(bad)


# ----------------------------------------------------------------------------------- schedulers
def _sched_pair(make_ours, make_torch, steps=25):
    p = nn.Parameter(tr.ones(1, dtype=tr.float64))
    q = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    o_opt = optim.SGD([{"params": [p]}], lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD([{"params": [q]}], lr=0.1, momentum=0.9)
    o_s, t_s = make_ours(o_opt), make_torch(t_opt)
    o_lrs, t_lrs = [o_s.get_last_lr()], [t_s.get_last_lr()]
    for _ in range(steps):
        o_opt.step()
        t_opt.step()
        o_s.step()
        t_s.step()
        o_lrs.append(o_s.get_last_lr())
        t_lrs.append(t_s.get_last_lr())
    np.testing.assert_allclose(np.array(o_lrs), np.array(t_lrs), rtol=1e-12, atol=1e-15)
    return o_s, o_opt


SCHEDS = [
    ("StepLR", dict(step_size=4, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[3, 7, 7, 15], gamma=0.3)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("LinearLR", dict(start_factor=0.1, total_iters=6)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.2, total_iters=8)),
    ("ExponentialLR", dict(gamma=0.9)),
]


@needs_torch
@pytest.mark.parametrize("name,kw", SCHEDS)
def test_scheduler_matches_torch(name, kw):
    _sched_pair(lambda o: getattr(sch, name)(o, **kw),
                lambda o: getattr(torch.optim.lr_scheduler, name)(o, **kw))


@needs_torch
def test_lambda_lr_matches_torch():
    fn = lambda e: 0.9**e + 0.01 * e  # noqa: E731
    _sched_pair(lambda o: sch.LambdaLR(o, fn), lambda o: torch.optim.lr_scheduler.LambdaLR(o, fn))


@needs_torch
def test_sequential_warmup_cosine_matches_torch():
    def ours(o):
        warm, cos = sch.LinearLR(o, 0.1, total_iters=5), sch.CosineAnnealingLR(o, T_max=15)
        return sch.SequentialLR(o, [warm, cos], [5])

    def theirs(o):
        T = torch.optim.lr_scheduler
        return T.SequentialLR(o, [T.LinearLR(o, 0.1, total_iters=5), T.CosineAnnealingLR(o, T_max=15)], [5])

    _sched_pair(ours, theirs, steps=22)


@pytest.mark.parametrize("name,kw", SCHEDS[:4])
def test_scheduler_state_dict_is_json_and_resumes(name, kw):
    p = nn.Parameter(tr.ones(1))
    opt = optim.SGD([p], lr=0.1)
    s = getattr(sch, name)(opt, **kw)
    for _ in range(5):
        s.step()
    sd = json.loads(json.dumps(s.state_dict()))
    # NOTE: as in PyTorch, build the scheduler first, then load the optimizer's state, then the scheduler's
    opt2 = optim.SGD([p], lr=0.1)
    s2 = getattr(sch, name)(opt2, **kw)
    opt2.load_state_dict(opt.state_dict())
    s2.load_state_dict(sd)
    for _ in range(7):
        s.step()
        s2.step()
        assert s2.get_last_lr() == pytest.approx(s.get_last_lr(), rel=1e-12)


@pytest.mark.parametrize("name,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.01))])
def test_optimizer_on_device_matches_cpu(device, name, kw):
    """The update runs on the parameter's own arrays (CuPy on a GPU, NumPy under the simulator)."""
    rng = np.random.default_rng(4)
    init, grads = rng.standard_normal((3, 2)), [rng.standard_normal((3, 2)) for _ in range(3)]
    results = []
    for dev in ("cpu", device):
        p = nn.Parameter(tr.tensor(init, dtype=tr.float64).to(dev))
        opt = getattr(optim, name)([p], **kw)
        for g in grads:
            p.grad = tr.tensor(g, dtype=tr.float64).to(dev)
            opt.step()
        assert p.device == dev
        results.append(p.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12)


def test_schedules_follow_their_closed_forms():
    """Without the oracle: the recursive updates land on each schedule's formula."""
    p = nn.Parameter(tr.ones(1))

    def lrs(make, n):
        opt = optim.SGD([p], lr=0.2)
        s = make(opt)
        out = [s.get_last_lr()[0]]
        for _ in range(n):
            s.step()
            out.append(s.get_last_lr()[0])
        return np.array(out)

    t = np.arange(13)
    np.testing.assert_allclose(lrs(lambda o: sch.StepLR(o, 3, 0.5), 12), 0.2 * 0.5 ** (t // 3), rtol=1e-12)
    cos = 0.01 + (0.2 - 0.01) * (1 + np.cos(np.pi * t[:11] / 10)) / 2
    np.testing.assert_allclose(lrs(lambda o: sch.CosineAnnealingLR(o, 10, eta_min=0.01), 10), cos, rtol=1e-12)
    lin = 0.2 * (0.25 + 0.75 * np.minimum(t, 4) / 4)
    np.testing.assert_allclose(lrs(lambda o: sch.LinearLR(o, 0.25, total_iters=4), 12), lin, rtol=1e-12)
    ms = 0.2 * 0.1 ** ((t >= 2).astype(int) + 2 * (t >= 5))
    np.testing.assert_allclose(lrs(lambda o: sch.MultiStepLR(o, [2, 5, 5]), 12), ms, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", [
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True, maximize=True)),
])
def test_fused_adam_kernel_gives_the_numpy_bits(name, kw, dtype):
    """The one-pass CPU kernel (kernels/cpu.adam_step) and the NumPy reference (kernels/reference.adam_step,
    chosen with set_backend): identical parameters and state after several steps, in float32 and float64,
    including a NaN gradient and an inf parameter."""
    rng = np.random.default_rng(4)
    shapes = [(64, 3, 3, 3), (7,), (1000,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    init[2][5] = np.inf
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(5)]
    grads[1][1][3] = np.nan
    results = []
    prev = tr.get_backend()
    for tier in ("cpu", "reference"):
        tr.set_backend(tier)
        try:
            params = [nn.Parameter(tr.tensor(a.copy())) for a in init]
            opt = getattr(optim, name)(params, **kw)
            for gs in grads:
                for p, g in zip(params, gs):
                    p.grad = tr.tensor(g)
                with np.errstate(invalid="ignore"):  # the NaN and the inf are on purpose
                    opt.step()
        finally:
            tr.set_backend(prev)
        results.append(([p.numpy().copy() for p in params],
                        [np.array(v) for st in opt.state.values() for v in st.values()]))
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("opt, kw, what", [
    (optim.Adam, {"lr": float("nan")}, "learning rate"), (optim.AdamW, {"lr": float("nan")}, "learning rate"),
    (optim.SGD, {"lr": float("nan")}, "learning rate"), (optim.Adam, {"eps": float("nan")}, "epsilon"),
    (optim.Adam, {"weight_decay": float("nan")}, "weight_decay"),
    (optim.SGD, {"lr": 0.1, "momentum": float("nan")}, "momentum"),
    (optim.SGD, {"lr": 0.1, "weight_decay": float("nan")}, "weight_decay"),
])
def test_nan_hyperparameters_are_refused_like_pytorch(opt, kw, what):
    # PyTorch checks `not 0.0 <= lr`, which refuses nan; `lr < 0` let it through and trained nan weights
    with pytest.raises(ValueError, match=what):
        opt([nn.Parameter(tr.ones(2))], **kw)
