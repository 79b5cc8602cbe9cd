"""UNet: output shapes for both upsampling modes, clear errors, gradients reach every parameter, a tiny
overfit, and (with torch) the same numbers as an equivalent PyTorch U-Net given the same weights."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad.models.unet import UNet
from tinygrad_rad.nn import DiceBCELoss
from tinygrad_rad.optim import Adam


@pytest.mark.parametrize("up", ["transpose", "interp"])
@pytest.mark.parametrize("depth,size", [(1, (6, 10)), (2, (8, 12)), (3, (16, 8))])
def test_shapes(up, depth, size):
    net = UNet(in_channels=2, num_classes=3, depth=depth, base_channels=4, up=up)
    y = net(tr.randn(2, 2, *size))
    assert y.shape == (2, 3, *size)


def test_errors_name_the_problem():
    net = UNet(depth=3, base_channels=2)
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 8"):
        net(tr.randn(1, 1, 12, 16))
    with pytest.raises(ValueError, match="expected input"):
        net(tr.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="up must be"):
        UNet(up="bicubic")
    with pytest.raises(ValueError, match="depth"):
        UNet(depth=0)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_every_parameter_gets_a_gradient(batch_norm):
    net = UNet(depth=2, base_channels=3, batch_norm=batch_norm, up="interp")
    x = tr.randn(2, 1, 8, 8)
    net(x).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.isfinite(p.grad.numpy()).all(), name
        assert np.abs(p.grad.numpy()).sum() > 0, name


def test_input_gradient_matches_finite_differences():
    net = UNet(depth=1, base_channels=2, batch_norm=False).double()
    x = tr.randn(1, 1, 4, 4, dtype=tr.float64, requires_grad=True)
    tr.gradcheck(lambda t: net(t), [x], atol=1e-6, rtol=1e-4)


def test_tiny_overfit():
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 16, 16)).astype(np.float32)
    yy, xx = np.mgrid[:16, :16]
    masks = np.stack([((yy - c) ** 2 + (xx - c) ** 2 < 20) for c in (5, 7, 9, 11)])[:, None].astype(
        np.float32
    )
    x = x * 0.3 + masks * 0.7  # the object is brighter
    net = UNet(depth=2, base_channels=4)
    opt = Adam(net.parameters(), lr=1e-2)
    loss_fn = DiceBCELoss()
    first = None
    for _ in range(40):
        loss = loss_fn(net(tr.tensor(x)), masks)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first  # PyTorch, same net and recipe: 1.27 -> 0.51


def test_matches_pytorch_unet_with_same_weights():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    def tblock(cin, cout):
        return tnn.Sequential(
            tnn.Conv2d(cin, cout, 3, padding=1, bias=False),
            tnn.BatchNorm2d(cout),
            tnn.ReLU(),
            tnn.Conv2d(cout, cout, 3, padding=1, bias=False),
            tnn.BatchNorm2d(cout),
            tnn.ReLU(),
        )

    class TUNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.d0, self.d1, self.b = tblock(1, 4), tblock(4, 8), tblock(8, 16)
            self.u1, self.c1 = tnn.ConvTranspose2d(16, 8, 2, stride=2), tblock(16, 8)
            self.u0, self.c0 = tnn.ConvTranspose2d(8, 4, 2, stride=2), tblock(8, 4)
            self.head = tnn.Conv2d(4, 2, 1)

        def forward(self, x):
            s0 = self.d0(x)
            s1 = self.d1(torch.max_pool2d(s0, 2))
            b = self.b(torch.max_pool2d(s1, 2))
            y = self.c1(torch.cat([self.u1(b), s1], 1))
            y = self.c0(torch.cat([self.u0(y), s0], 1))
            return self.head(y)

    ours = UNet(1, 2, depth=2, base_channels=4)
    ref = TUNet().double()
    # map parameters in module-definition order (both enumerate conv/bn weights in the same order)
    ours_params = [p for _, p in ours.named_parameters()]
    ref_order = [
        *ref.d0.parameters(),
        *ref.d1.parameters(),
        *ref.b.parameters(),
        *ref.u1.parameters(),
        *ref.c1.parameters(),
        *ref.u0.parameters(),
        *ref.c0.parameters(),
        *ref.head.parameters(),
    ]
    assert [tuple(p.shape) for p in ours_params] == [tuple(p.shape) for p in ref_order]
    ours = ours.double()
    ours_params = [p for _, p in ours.named_parameters()]
    with torch.no_grad():
        for a, b in zip(ours_params, ref_order):
            b.copy_(torch.from_numpy(a.numpy().copy()))
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    y = ours(tr.tensor(x))
    yt = ref(torch.from_numpy(x))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=1e-8, atol=1e-9)
    y.sum().backward()
    yt.sum().backward()
    for a, b in zip(ours_params, ref_order):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6, atol=1e-8)
