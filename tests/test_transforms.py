"""Transforms: geometry vs PyTorch's grid_sample / interpolate, hand-checked cases, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rad.data import transforms as T


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _torch_theta_to_pixels(theta, h, w):
    """torch affine_grid (align_corners=False) normalised matrices -> our pixel matrices."""
    p_in = np.array([[w / 2, 0, (w - 1) / 2], [0, h / 2, (h - 1) / 2], [0, 0, 1]])
    p_out_inv = np.array([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]])
    th3 = np.concatenate([theta, np.tile([[[0.0, 0.0, 1.0]]], (theta.shape[0], 1, 1))], 1)
    return (p_in @ th3 @ p_out_inv)[:, :2]


@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
def test_affine_sample_matches_torch_grid_sample(padding_mode):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    x = _rand(4, 2, 9, 7)
    theta = rng.normal(size=(4, 2, 3)) * 0.3 + np.array([[1.0, 0, 0], [0, 1.0, 0]])
    grid = F.affine_grid(torch.tensor(theta, dtype=torch.float32), (4, 2, 9, 7), align_corners=False)
    ref = F.grid_sample(torch.tensor(x), grid, mode="bilinear", padding_mode=padding_mode,
                        align_corners=False)
    got = T.affine_sample(x, _torch_theta_to_pixels(theta, 9, 7), padding_mode=padding_mode)
    np.testing.assert_allclose(got, ref.numpy(), atol=2e-6)


def test_affine_hand_cases():
    img = np.zeros((1, 5, 5), np.float32)
    img[0, 2, 4] = 1.0  # right of centre
    m = T.affine_matrices([90.0], [[0, 0]], [1.0], [0.0], 5, 5)
    out = T.affine_sample(img, m[0])
    assert np.argwhere(out[0] > 0.5).tolist() == [[0, 2]]  # +90 deg = counter-clockwise: moves to the top
    m = T.affine_matrices([0.0], [[-2, 1]], [1.0], [0.0], 5, 5)
    out = T.affine_sample(img, m[0])
    assert np.argwhere(out[0] > 0.5).tolist() == [[3, 2]]  # shifted 2 left, 1 down
    ident = T.affine_matrices([0.0], [[0, 0]], [1.0], [0.0], 5, 5)
    np.testing.assert_allclose(T.affine_sample(img, ident[0]), img)
    # half-pixel shift averages neighbours; outside samples read the fill value
    half = np.array([[1.0, 0, 0.5], [0, 1.0, 0]])
    row = np.arange(4, dtype=np.float32).reshape(1, 1, 4)
    np.testing.assert_allclose(T.affine_sample(row, half)[0, 0], [0.5, 1.5, 2.5, 1.5])
    np.testing.assert_allclose(T.affine_sample(row, half, fill=3.0)[0, 0], [0.5, 1.5, 2.5, 3.0])
    np.testing.assert_allclose(T.affine_sample(row, half, padding_mode="border")[0, 0], [0.5, 1.5, 2.5, 3.0])


def test_random_affine_batched_equals_per_image():
    x = _rand(6, 1, 28, 28)
    aug = T.RandomAffine(10, translate=(2 / 28, 2 / 28), scale=(0.9, 1.1), shear=5)
    out = aug(x, rng=np.random.default_rng(7))
    assert out.shape == x.shape and out.dtype == np.float32
    ang, tr, sc, sh = aug.sample_params(6, 28, 28, np.random.default_rng(7))
    for i in range(6):
        m = T.affine_matrices(ang[i : i + 1], tr[i : i + 1], sc[i : i + 1], sh[i : i + 1], 28, 28)
        np.testing.assert_allclose(out[i], T.affine_sample(x[i], m[0]), atol=1e-6)
    np.testing.assert_array_equal(out, aug(x, rng=np.random.default_rng(7)))  # repeatable
    assert not np.array_equal(out, aug(x, rng=np.random.default_rng(8)))
    assert T.RandomRotation(15)(x[0], rng=np.random.default_rng(0)).shape == (1, 28, 28)
    np.testing.assert_array_equal(T.RandomAffine(10, p=0.0)(x, rng=np.random.default_rng(0)), x)


@pytest.mark.parametrize("size", [(13, 5), (40, 31), (9, 7), (4, 4)])
def test_resize_matches_torch_interpolate(size):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = _rand(2, 3, 9, 7)
    ref = F.interpolate(torch.tensor(x), size=size, mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(T.Resize(size)(x), ref, atol=1e-6)
    ref = F.interpolate(torch.tensor(x), size=size, mode="nearest").numpy()
    np.testing.assert_array_equal(T.resize(x, size, "nearest"), ref)


def test_flips_crops_hand():
    x = np.arange(2 * 1 * 3 * 4, dtype=np.float32).reshape(2, 1, 3, 4)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(x), x[..., ::-1, :])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x), x)
    flipped = T.RandomHorizontalFlip(0.5)(np.repeat(x[:1], 200, 0), rng=np.random.default_rng(0))
    n_flipped = sum(np.array_equal(f, x[0, :, :, ::-1]) for f in flipped)
    assert 70 < n_flipped < 130
    np.testing.assert_array_equal(T.CenterCrop(2)(x[0]), x[0, :, 0:2, 1:3])  # top=round(0.5)=0
    # RandomCrop with padding: each output is a window of the zero-padded image
    out = T.RandomCrop(3, padding=1)(x, rng=np.random.default_rng(0))
    assert out.shape == (2, 1, 3, 3)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for i in range(2):
        windows = [padded[i, :, t : t + 3, l : l + 3] for t in range(3) for l in range(4)]
        assert any(np.array_equal(out[i], w) for w in windows)
    with pytest.raises(ValueError, match="larger"):
        T.CenterCrop(10)(x)


def test_intensity_normalize_window_tofloat():
    x = _rand(8, 1, 6, 6)
    out = T.RandomIntensity(brightness=0.0, contrast=0.0)(x)
    np.testing.assert_allclose(out, x, atol=1e-6)
    out = T.RandomIntensity(brightness=0.2, contrast=0.2, clip=None)(x, rng=np.random.default_rng(0))
    c = np.random.default_rng(0).uniform(0.8, 1.2, 8)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), x.std(axis=(1, 2, 3)) * c, rtol=1e-4)
    np.testing.assert_allclose(T.Normalize(0.5, 0.5)(x), (x - 0.5) / 0.5, atol=1e-6)
    rgb = _rand(3, 4, 4)
    np.testing.assert_allclose(T.Normalize([0.1, 0.2, 0.3], [1, 2, 4])(rgb)[2], (rgb[2] - 0.3) / 4, atol=1e-6)
    hu = np.array([-1350.0, -600.0, 150.0, 500.0])
    np.testing.assert_allclose(T.CTWindow("lung")(hu), [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(T.CTWindow(50, 350)(np.array([-125.0, 50.0, 225.0])), [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="unknown CT window"):
        T.CTWindow("liverish")
    u8 = np.array([[0, 255], [51, 102]], np.uint8)
    np.testing.assert_allclose(T.ToFloat()(u8), [[[0, 1], [0.2, 0.4]]])
    assert T.ToFloat(channels_last=True)(np.zeros((4, 5, 3), np.uint8)).shape == (3, 4, 5)


def test_compose_is_repeatable():
    x = _rand(16, 1, 28, 28)
    aug = T.Compose([T.RandomAffine(10), T.RandomHorizontalFlip(), T.RandomIntensity(),
                     T.Normalize(0.5, 0.5)])
    np.testing.assert_array_equal(aug(x, rng=np.random.default_rng(3)), aug(x, rng=np.random.default_rng(3)))
