"""Grad-CAM and gradient saliency: the CAM identity, PyTorch agreement, layer choice, no side effects."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad import nn
from tinygrad_rad.explain import capture_outputs, find_target_layer, grad_cam
from tinygrad_rad.models import SmallCNN, build_model


class ConvGap(nn.Module):
    """conv -> ReLU -> global average pool -> linear: Grad-CAM must equal CAM (Zhou et al. 2016)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.pool(self.act(self.conv(x))).flatten(1))


def test_grad_cam_equals_class_activation_map():
    tr.manual_seed(7)
    model = ConvGap()
    x = np.random.default_rng(0).standard_normal((3, 1, 9, 9)).astype(np.float32)
    cams, sal, logits, target = grad_cam(model, x, target=[0, 2, 1])
    # dy_c/dA_k = W[c, k] / (h w)  =>  cam ~ relu(sum_k W[c, k] A_k), then scaled to max 1
    with tr.no_grad():
        a = model.act(model.conv(tr.Tensor(x))).numpy().astype(np.float64)
    w = model.fc.weight.numpy().astype(np.float64)
    nonzero = 0
    for i, c in enumerate([0, 2, 1]):
        cam = np.maximum(np.tensordot(w[c], a[i], axes=1), 0)
        want = cam / cam.max() if cam.max() > 0 else cam  # an all-negative map stays zero
        nonzero += cam.max() > 0
        np.testing.assert_allclose(cams[i], want, rtol=1e-4, atol=1e-5)
    assert nonzero >= 2
    np.testing.assert_array_equal(target, [0, 2, 1])
    assert sal.shape == (3, 9, 9) and sal.min() >= 0 and np.allclose(sal.max(axis=(1, 2)), 1.0)


def test_grad_cam_and_saliency_match_pytorch_on_smallcnn():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    tr.manual_seed(3)
    model = SmallCNN(1, 2)
    model.eval()
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)

    def cbr(i, o):
        return [tnn.Conv2d(i, o, 3, padding=1, bias=False), tnn.BatchNorm2d(o), tnn.ReLU()]

    ref = tnn.Module()
    ref.features = tnn.Sequential(*cbr(1, 32), *cbr(32, 64), tnn.MaxPool2d(2), *cbr(64, 128),
                                  tnn.MaxPool2d(2))
    ref.fc = tnn.Linear(128, 2)
    ref.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in model.state_dict().items()})
    ref.eval()
    xt = torch.from_numpy(x).requires_grad_(True)
    feats = ref.features[:10](xt)  # output of the last conv-BN-ReLU block
    feats.retain_grad()
    logits = ref.fc(ref.features[10](feats).mean((2, 3)))
    target = logits.argmax(1)
    logits.gather(1, target[:, None]).sum().backward()
    w = feats.grad.mean((2, 3), keepdim=True)
    cam = torch.relu((w * feats).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.flatten(1).max(1).values[:, None, None]
    sal = xt.grad.abs().amax(1)
    sal = sal / sal.flatten(1).max(1).values[:, None, None]

    assert find_target_layer(model, tr.Tensor(x)) == "features.9"
    cams, sals, lg, tgt = grad_cam(model, x)
    np.testing.assert_allclose(lg, logits.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(tgt, target.numpy())
    np.testing.assert_allclose(cams, cam.detach().numpy(), atol=2e-4)
    np.testing.assert_allclose(sals, sal.numpy(), atol=2e-4)


def test_target_layer_is_the_last_feature_map_before_pooling():
    x = tr.zeros(1, 1, 28, 28)
    assert find_target_layer(SmallCNN(1, 2), x) == "features.9"
    resnet = build_model("resnet18", 1, 2)
    name = find_target_layer(resnet, x)
    assert name == "layer4"


def test_no_side_effects_on_the_model():
    model = SmallCNN(1, 3)
    model.train()
    flags = [p.requires_grad for p in model.parameters()]
    grad_cam(model, np.zeros((2, 1, 16, 16), np.float32), target=1)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_capture_outputs_order_and_errors():
    model = ConvGap()
    with tr.no_grad(), capture_outputs(dict(model.named_modules())) as rec:
        model(tr.zeros(1, 1, 5, 5))
    # completion order: children finish before the model itself
    assert [name for name, _, _ in rec] == ["conv", "act", "pool", "fc", ""]
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, np.zeros((1, 1, 5, 5), np.float32), target=7)
    with pytest.raises(ValueError, match="no module named"):
        grad_cam(model, np.zeros((1, 1, 5, 5), np.float32), target_layer="nope")
