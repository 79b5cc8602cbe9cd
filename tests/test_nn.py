"""nn.Module machinery, the layers (against torch.nn in float64), nn.init and nn.utils."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad import nn
from tinygrad_rad.tensor import Tensor

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the test oracle) is not installed")


# --------------------------------------------------------------------------------- Module basics
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.register_buffer("scale", tr.ones(1))
        self.register_buffer("scratch", tr.zeros(1), persistent=False)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
        self.plain = 5  # not registered

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).relu() * self.scale)


def test_registration_and_iteration():
    m = Block()
    assert isinstance(m.conv.weight, Tensor) and isinstance(m.conv.weight, nn.Parameter)
    assert m.conv.weight.requires_grad
    names = [n for n, _ in m.named_parameters()]
    assert names == ["conv.weight", "conv.bias", "bn.weight", "bn.bias", "head.1.weight", "head.1.bias"]
    assert [n for n, _ in m.named_buffers()] == [
        "scale", "scratch", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in m.named_children()] == ["conv", "bn", "head"]
    assert [n for n, _ in m.named_modules()] == ["", "conv", "bn", "head", "head.0", "head.1"]
    assert len(list(m.modules())) == 6 and len(list(m.children())) == 3
    sd = m.state_dict()
    assert "scratch" not in sd and "bn.num_batches_tracked" in sd and "scale" in sd
    assert m.num_parameters() == 2 * 4 * 9 + 4 + 4 + 4 + 100 * 3 + 3
    assert f"{m.num_parameters():,} parameters" in repr(m)
    assert "(conv): Conv2d(2, 4, kernel_size=(3, 3)" in repr(m)


def test_shared_parameter_is_listed_once():
    a = nn.Linear(3, 3)
    seq = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(seq.parameters())) == 2
    seq.b = nn.Linear(3, 3)
    seq.b.weight = a.weight  # tie
    assert len(list(seq.parameters())) == 3


def test_setattr_rules():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        m.weight = tr.zeros(2, 2)
    m.bias = None
    assert m.bias is None and [n for n, _ in m.named_parameters()] == ["weight"]
    out = m(tr.ones(1, 2))
    np.testing.assert_allclose(out.numpy(), m.weight.numpy().sum(1)[None], rtol=1e-6)

    class NoInit(nn.Module):
        def __init__(self):
            self.x = 1

    with pytest.raises(AttributeError, match="super"):
        NoInit()


def test_train_eval_zero_grad_requires_grad_apply():
    m = Block()
    m.eval()
    assert all(not mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    m(tr.randn(2, 2, 5, 5)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(float(np.abs(p.grad.numpy()).sum()) == 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Block" and "Conv2d" in seen


def test_load_state_dict_strict_and_shape_errors():
    src, dst = Block(), Block()
    dst.load_state_dict(src.state_dict())
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    assert dst.conv.weight.data is not src.conv.weight.data  # copied, not aliased
    sd = src.state_dict()
    sd["extra.weight"] = tr.zeros(1)
    del sd["conv.bias"]
    with pytest.raises(RuntimeError, match="(?s)missing keys: 'conv.bias'.*unexpected keys: 'extra.weight'"):
        dst.load_state_dict(sd)
    res = dst.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["conv.bias"] and res.unexpected_keys == ["extra.weight"]
    sd = src.state_dict()
    sd["head.1.weight"] = np.zeros((4, 100))
    with pytest.raises(RuntimeError, match=r"'head.1.weight'.*\(4, 100\).*\(3, 100\)"):
        dst.load_state_dict(sd, strict=False)


def test_to_dtype_and_device_keep_parameter_identity():
    m = Block()
    w = m.conv.weight
    m.double()
    assert m.conv.weight is w and w.dtype == np.float64 and m.bn.running_mean.dtype == np.float64
    assert m.bn.num_batches_tracked.dtype == np.int64
    assert m(tr.randn(1, 2, 5, 5, dtype=tr.float64)).dtype == np.float64
    m.float()
    assert w.dtype == np.float32


def test_to_cuda_simulator_moves_params_and_buffers():
    if not tr.cuda.is_available():
        pytest.skip("no CUDA device or simulator")
    m = Block()
    w = m.conv.weight
    m.to("cuda")
    assert m.conv.weight is w and all(t.device == "cuda" for t in list(m.parameters()) + list(m.buffers()))
    m.cpu()
    assert all(t.device == "cpu" for t in m.parameters())


def test_containers():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    ml.append(nn.ReLU())
    assert len(ml) == 4 and len(list(ml.parameters())) == 6 and isinstance(ml[-1], nn.ReLU)
    md = nn.ModuleDict({"a": nn.Linear(2, 3)})
    md["b"] = nn.Linear(3, 1)
    assert list(md.keys()) == ["a", "b"] and "a" in md
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias", "b.weight", "b.bias"]
    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), act=nn.Tanh()))
    assert isinstance(seq.fc, nn.Linear) and len(seq) == 2 and isinstance(seq[1], nn.Tanh)
    assert isinstance(seq[:1], nn.Sequential) and len(seq[:1]) == 1
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.Linear(2, 2), lambda x: x)


# ------------------------------------------------------------------------------- layers vs torch
def _compare(ours, theirs, *shapes, train=True, int_input=None, tol=1e-10):
    """Copy torch's weights into ours (state_dict keys must match), run forward + backward in float64."""
    ours.double()
    theirs.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    ours.train(train)
    theirs.train(train)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s) for s in shapes]
    o_in = [tr.tensor(x, dtype=tr.float64, requires_grad=True) for x in xs]
    t_in = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    if int_input is not None:
        o_in.append(tr.tensor(int_input))
        t_in.append(torch.tensor(int_input))
    o_out, t_out = ours(*o_in), theirs(*t_in)
    np.testing.assert_allclose(o_out.numpy(), t_out.detach().numpy(), rtol=tol, atol=tol)
    r = rng.standard_normal(t_out.shape)
    (o_out * tr.tensor(r, dtype=tr.float64)).sum().backward()
    (t_out * torch.tensor(r)).sum().backward()
    for a, b in zip(o_in, t_in):
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=tol, atol=tol)
    tp = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=tol, atol=tol, err_msg=name)
    for (name, b), tb in zip(ours.named_buffers(), theirs.buffers()):
        np.testing.assert_allclose(b.numpy(), tb.numpy(), rtol=tol, atol=tol, err_msg=name)


LAYERS = [
    ("Linear", (5, 3), ((4, 5),)),
    ("Linear", (5, 3, False), ((2, 6, 5),)),
    ("Conv2d", (3, 4, 3), ((2, 3, 6, 6),)),
    ("Conv2d", (4, 6, (3, 2), 2, 1, 1, 2, False), ((2, 4, 7, 6),)),
    ("Conv2d", (2, 4, 3), ((1, 2, 6, 6),), dict(padding="same", dilation=2)),
    ("ConvTranspose2d", (3, 2, 3, 2, 1, 1), ((2, 3, 4, 4),)),
    ("ConvTranspose2d", (4, 6, 2, 2, 0, 0, 2), ((1, 4, 3, 3),)),
    ("BatchNorm2d", (3,), ((4, 3, 2, 2),)),
    ("BatchNorm2d", (3, 1e-3, None), ((4, 3, 2, 2),)),
    ("BatchNorm2d", (3, 1e-5, 0.1, False), ((4, 3, 2, 2),)),
    ("BatchNorm1d", (3,), ((5, 3),)),
    ("BatchNorm1d", (3,), ((5, 3, 4),)),
    ("MaxPool2d", (3, 2, 1), ((2, 2, 7, 7),)),
    ("AvgPool2d", (2,), ((2, 2, 6, 6),)),
    ("AdaptiveAvgPool2d", ((2, 3),), ((2, 2, 5, 7),)),
    ("Upsample", (), ((1, 2, 3, 4),), dict(scale_factor=2, mode="bilinear", align_corners=False)),
    ("Upsample", (), ((1, 2, 3, 4),), dict(size=(5, 7), mode="nearest")),
    ("Flatten", (), ((2, 3, 4),)),
    ("Identity", (), ((2, 3),)),
    ("ReLU", (), ((3, 4),)),
    ("LeakyReLU", (0.2,), ((3, 4),)),
    ("ELU", (0.7,), ((3, 4),)),
    ("GELU", (), ((3, 4),)),
    ("GELU", ("tanh",), ((3, 4),)),
    ("Sigmoid", (), ((3, 4),)),
    ("Tanh", (), ((3, 4),)),
    ("Softplus", (2.0,), ((3, 4),)),
    ("Softmax", (1,), ((3, 4),)),
    ("LogSoftmax", (-1,), ((3, 4),)),
    ("MSELoss", (), ((3, 4), (3, 4))),
    ("L1Loss", (), ((3, 4), (3, 4))),
    ("SmoothL1Loss", (), ((3, 4), (3, 4)), dict(beta=0.5)),
    ("BCEWithLogitsLoss", (), ((3, 4), (3, 4))),
]


@needs_torch
@pytest.mark.parametrize("spec", LAYERS, ids=lambda s: s[0] + str(s[1]))
def test_layer_matches_torch(spec):
    name, args, shapes = spec[:3]
    kw = spec[3] if len(spec) > 3 else {}
    _compare(getattr(nn, name)(*args, **kw), getattr(torch.nn, name)(*args, **kw), *shapes)


@needs_torch
def test_batchnorm_eval_and_several_train_steps_match_torch():
    ours, theirs = nn.BatchNorm2d(3, momentum=0.3), torch.nn.BatchNorm2d(3, momentum=0.3)
    for _ in range(3):
        _compare(ours, theirs, (4, 3, 2, 2))
    assert int(ours.num_batches_tracked.item()) == 3
    _compare(ours, theirs, (4, 3, 2, 2), train=False)
    assert int(ours.num_batches_tracked.item()) == 3


@needs_torch
@pytest.mark.parametrize("name,kw", [("CrossEntropyLoss", dict(label_smoothing=0.1)),
                                     ("CrossEntropyLoss", dict(reduction="sum", ignore_index=1)),
                                     ("NLLLoss", dict())])
def test_classification_losses_match_torch(name, kw):
    y = np.array([0, 2, 1, 2])
    _compare(getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw), (4, 3), int_input=y)


@needs_torch
def test_cross_entropy_class_weight_matches_torch():
    w = np.array([0.2, 1.0, 3.0])
    ours = nn.CrossEntropyLoss(weight=tr.tensor(w, dtype=tr.float64))
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(w))
    _compare(ours, theirs, (5, 3), int_input=np.array([0, 1, 2, 2, 1]))


def test_dropout_train_and_eval():
    x = tr.ones(200, 50)
    d = nn.Dropout(0.3)
    y = d(x).numpy()
    kept = y != 0
    assert 0.25 < 1 - kept.mean() < 0.35
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    d.eval()
    assert d(x) is x
    d2 = nn.Dropout2d(0.5)
    z = d2(tr.ones(8, 16, 3, 3)).numpy()
    per_channel = z.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    assert 0 < (per_channel == 0).all(-1).mean() < 1
    xg = tr.ones(4, 3, 2, 2, requires_grad=True)
    out = d2(xg)
    out.sum().backward()
    np.testing.assert_array_equal(xg.grad.numpy(), out.numpy())


def test_conv_argument_errors():
    with pytest.raises(ValueError, match="groups=3 must divide in_channels=4"):
        nn.Conv2d(4, 6, 3, groups=3)
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="expects input to have 3 channels, but got 2"):
        conv(tr.randn(1, 2, 5, 5))
    bn = nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match="expected 4 channels"):
        bn(tr.randn(2, 3, 2, 2))


# ------------------------------------------------------------------------------------------ init
def test_default_init_bounds_and_seed():
    tr.manual_seed(3)
    a = nn.Conv2d(8, 16, 3)
    tr.manual_seed(3)
    b = nn.Conv2d(8, 16, 3)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    bound = 1 / math.sqrt(8 * 9)  # kaiming_uniform_(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
    w, bias = a.weight.numpy(), a.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(bias).max() <= bound
    lin = nn.Linear(400, 10)
    assert abs(lin.weight.numpy().std() - (1 / math.sqrt(400)) / math.sqrt(3)) < 2e-3


def test_init_functions():
    w = tr.empty(256, 128)
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 256)) < 0.01 * math.sqrt(2 / 256) * 10
    nn.init.xavier_uniform_(w, gain=2.0)
    a = 2.0 * math.sqrt(6 / (256 + 128))
    assert np.abs(w.numpy()).max() <= a and np.abs(w.numpy()).max() > 0.95 * a
    nn.init.xavier_normal_(w)
    assert abs(w.numpy().std() - math.sqrt(2 / 384)) < 0.005
    nn.init.constant_(w, 0.5)
    assert np.all(w.numpy() == 0.5)
    nn.init.zeros_(w)
    assert not w.numpy().any()
    nn.init.ones_(w)
    assert np.all(w.numpy() == 1)
    nn.init.uniform_(w, -0.1, 0.2)
    assert w.numpy().min() >= -0.1 and w.numpy().max() <= 0.2
    nn.init.normal_(w, 3.0, 0.5)
    assert abs(w.numpy().mean() - 3.0) < 0.01
    nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(w.numpy()).max() <= 0.5
    with pytest.raises(ValueError, match="at least 2 dims"):
        nn.init.kaiming_uniform_(tr.empty(5))


@needs_torch
def test_calculate_gain_matches_torch():
    for nl, p in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                  ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert nn.init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))


# ----------------------------------------------------------------------------------------- utils
@needs_torch
@pytest.mark.parametrize("norm_type,max_norm", [(2.0, 1.0), (1.0, 0.5), (float("inf"), 0.1), (2.0, 1e6)])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(0)
    gs = [rng.standard_normal(s) for s in [(3, 4), (5,), (2, 2, 2)]]
    ours = [nn.Parameter(tr.zeros(*g.shape, dtype=tr.float64)) for g in gs]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
    for p, q, g in zip(ours, theirs, gs):
        p.grad = tr.tensor(g, dtype=tr.float64)
        q.grad = torch.tensor(g)
    n1 = nn.utils.clip_grad_norm_(ours, max_norm, norm_type)
    n2 = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert float(n1) == pytest.approx(float(n2), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_and_nonfinite():
    p = nn.Parameter(tr.zeros(3))
    p.grad = tr.tensor([-3.0, 0.5, 2.0])
    nn.utils.clip_grad_value_([p], 1.0)
    np.testing.assert_array_equal(p.grad.numpy(), [-1.0, 0.5, 1.0])
    p.grad = tr.tensor([float("nan"), 1.0, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


def _bn_relu_stack(mod, affine=True):
    return mod.Sequential(mod.Conv2d(2, 3, 3, padding=1), mod.BatchNorm2d(3, affine=affine), mod.ReLU(),
                          mod.BatchNorm2d(3), mod.ReLU(), mod.Conv2d(3, 2, 1))


@needs_torch
@pytest.mark.parametrize("affine", [True, False])
def test_sequential_fuses_batchnorm_relu_like_torch(affine):
    """Sequential runs BatchNorm -> ReLU as one op (F.batch_norm_relu): forward, every gradient and the
    running statistics match PyTorch's separate layers, in training and in eval."""
    ours, theirs = _bn_relu_stack(nn, affine), _bn_relu_stack(torch.nn, affine)
    for _ in range(2):
        _compare(ours, theirs, (4, 2, 5, 5))
    _compare(ours, theirs, (4, 2, 5, 5), train=False)


def test_fused_batchnorm_relu_equals_the_two_ops(monkeypatch):
    """F.batch_norm_relu == F.relu(F.batch_norm) in float32 (values, gradients, running stats), and the
    fused op is what Sequential records; a wrapped forward (explain.capture_outputs) turns fusion off."""
    from tinygrad_rad.explain import capture_outputs
    from tinygrad_rad.nn import functional as F

    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((6, 3, 7, 7)).astype(np.float32) * 2 + 1
    g0 = rng.standard_normal(x0.shape).astype(np.float32)
    res = []
    for fused in (True, False):
        tr.manual_seed(0)
        bn = nn.BatchNorm2d(3)
        bn.weight.data = rng.standard_normal(3).astype(np.float32) if not res else res[0][4]
        x = tr.tensor(x0, requires_grad=True)
        y = bn.forward_relu(x) if fused else F.relu(bn(x))
        (y * tr.tensor(g0)).sum().backward()
        res.append((y.numpy(), x.grad.numpy(), bn.weight.grad.numpy(), bn.running_var.numpy(),
                    bn.weight.data))
        assert (type(y._ctx).__name__ == "BatchNormReLUTrain") == fused
    for a, b in zip(*res):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    seq = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU())
    assert type(seq(tr.tensor(x0))._ctx).__name__ == "BatchNormReLUTrain"
    with capture_outputs({"1": seq[1]}) as rec:
        out = seq(tr.tensor(x0))
    assert type(out._ctx).__name__ != "BatchNormReLUTrain" and len(rec) == 1  # the ReLU ran on its own


@pytest.mark.parametrize("dtype", [tr.float32, tr.float64])
def test_conv_bn_fuses_at_inference_with_the_same_values(monkeypatch, dtype):
    """nn.conv_bn and Sequential's Conv2d -> BatchNorm2d (-> ReLU) run as one op (ops.Conv2dAffineEval) in
    eval mode under no_grad, with a residual, a conv bias, affine=False; the values equal the modules run
    apart; with a gradient needed, or in training, the modules run apart."""
    import tinygrad_rad.nn.modules.containers as C
    from tinygrad_rad import ops
    from tinygrad_rad.models import ResNet18

    calls = []
    real = ops.Conv2dAffineEval.apply
    monkeypatch.setattr(ops.Conv2dAffineEval, "apply", lambda *a, **k: calls.append(1) or real(*a, **k))
    tr.manual_seed(0)
    models = [ResNet18(in_channels=1, num_classes=3, width=8).to(dtype),
              nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4, affine=False), nn.ReLU(),
                            nn.Conv2d(4, 3, 3, stride=2, bias=False), nn.BatchNorm2d(3)).to(dtype)]
    for m in models:
        x = tr.randn(4, m.conv1.in_channels if hasattr(m, "conv1") else 2, 12, 12, dtype=dtype)
        m.train()
        for _ in range(2):
            m(x)  # running statistics away from (0, 1)
        m.eval()
        calls.clear()
        with tr.no_grad():
            fused = m(x).numpy()
        assert calls, "the fused op did not run"
        monkeypatch.setattr(C, "_fuses_conv_bn", lambda *a: False)
        with tr.no_grad():
            apart = m(x).numpy()
        monkeypatch.undo()
        monkeypatch.setattr(ops.Conv2dAffineEval, "apply", lambda *a, **k: calls.append(1) or real(*a, **k))
        np.testing.assert_allclose(fused, apart, rtol=1e-6, atol=1e-6)
        calls.clear()
        out = m(x)  # eval mode, gradients on: the modules one by one
        out.sum().backward()
        assert not calls and next(iter(m.parameters())).grad is not None


def test_conv_affine_eval_op_refuses_backward():
    from tinygrad_rad import ops

    x = tr.randn(1, 2, 5, 5, requires_grad=True)
    w, s, t = tr.randn(3, 2, 3, 3), tr.ones(3), tr.zeros(3)
    y = ops.Conv2dAffineEval.apply(x, w, s, t, padding=(1, 1), relu=True)
    assert y.shape == (1, 3, 5, 5) and float(y.numpy().min()) >= 0
    with pytest.raises(RuntimeError, match="inference-only"):
        y.sum().backward()
