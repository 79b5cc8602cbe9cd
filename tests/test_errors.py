"""Bad input gets a clear error that names what was wrong (shapes, channels, dtypes, devices)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import cuda_available

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum"])
def test_binary_shape_mismatch_names_both_shapes(op):
    a, b = tr.ones(2, 3), tr.ones(4, 3)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 3\)"):
        getattr(a, op)(b)


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 3\)"):
        tr.ones(2, 3) @ tr.ones(4, 3)
    with pytest.raises(ValueError, match=r"\(2, 2, 3\) and \(3, 3, 4\)"):
        tr.ones(2, 2, 3) @ tr.ones(3, 3, 4)
    with pytest.raises(ValueError, match=r"linear: input has 3 features.*\(4, 5\)"):
        F.linear(tr.ones(2, 3), tr.ones(4, 5))


def test_conv_wrong_channel_count_names_expected_and_got():
    with pytest.raises(ValueError, match=r"expects input to have 2 channels, but got 3 channels"):
        F.conv2d(tr.ones(1, 3, 5, 5), tr.ones(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"input shape \(1, 3, 5, 5\)"):
        F.conv2d(tr.ones(1, 3, 5, 5), tr.ones(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"expects 4 input channels, but got 3"):
        F.conv_transpose2d(tr.ones(1, 3, 5, 5), tr.ones(4, 2, 3, 3))


def test_conv_bad_shapes():
    with pytest.raises(ValueError, match=r"4-D input.*\(3, 5, 5\)"):
        F.conv2d(tr.ones(3, 5, 5), tr.ones(4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"4-D weight.*\(4, 3, 3\)"):
        F.conv2d(tr.ones(1, 3, 5, 5), tr.ones(4, 3, 3))
    with pytest.raises(ValueError, match=r"smaller than the kernel"):
        F.conv2d(tr.ones(1, 1, 2, 2), tr.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"bias shape \(3,\).*out_channels=4"):
        F.conv2d(tr.ones(1, 3, 5, 5), tr.ones(4, 3, 3, 3), tr.ones(3))
    with pytest.raises(ValueError, match="groups=2 must divide in_channels=3"):
        F.conv2d(tr.ones(1, 3, 5, 5), tr.ones(4, 3, 3, 3), groups=2)


def test_backward_of_non_scalar_without_gradient():
    y = tr.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*\(2, 3\)"):
        y.backward()


def test_backward_of_tensor_without_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tr.ones(3).sum().backward()
    x = tr.ones(3, requires_grad=True)
    with tr.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_second_backward_through_freed_graph():
    x = tr.ones(3, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


@pytest.mark.parametrize(
    "arr,name",
    [
        (np.array([1 + 2j]), r"complex128 \(complex numbers\)"),
        (np.array([1 + 2j], dtype=np.complex64), "complex64"),
        (np.array(["a", "b"]), r"<U1 \(strings\)"),
        (np.array([object()]), r"object \(Python objects\)"),
        (np.array([1], dtype=np.uint16), "uint16"),
    ],
)
def test_unsupported_dtypes_refused_by_name(arr, name):
    with pytest.raises(TypeError, match=f"unsupported dtype {name}"):
        tr.tensor(arr)
    with pytest.raises(TypeError, match=f"unsupported dtype {name}"):
        tr.from_numpy(arr)


def test_unsupported_dtype_argument():
    with pytest.raises(TypeError, match="unsupported dtype complex64"):
        tr.ones(2, dtype="complex64")
    with pytest.raises(TypeError, match="unknown dtype"):
        tr.ones(2, dtype="not-a-dtype")


def test_reduction_bad_dim():
    with pytest.raises(IndexError, match="dim 3 is out of range for a tensor with 2 dimensions"):
        tr.ones(2, 3).sum(dim=3)


def test_loss_errors():
    with pytest.raises(ValueError, match="target 5 is out of range for 3 classes"):
        F.cross_entropy(tr.ones(2, 3), tr.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"needs a target of shape \(2,\), got \(3,\)"):
        F.cross_entropy(tr.ones(2, 3), tr.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="class indices"):
        F.cross_entropy(tr.ones(2, 3), tr.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"input shape \(2, 3\) and target shape \(3, 2\)"):
        F.mse_loss(tr.ones(2, 3), tr.ones(3, 2))


def test_pool_and_interpolate_errors():
    with pytest.raises(ValueError, match=r"4-D input.*\(2, 3\)"):
        F.max_pool2d(tr.ones(2, 3), 2)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(tr.ones(1, 1, 4, 4))
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.interpolate(tr.ones(1, 1, 4, 4), size=2, mode="bicubic")


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"running_mean has shape \(4,\), expected \(3,\)"):
        F.batch_norm(tr.ones(2, 3), tr.zeros(4), tr.ones(4), training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(tr.ones(1, 3), None, None, training=True)


@pytest.mark.skipif(not cuda_available(), reason="no CUDA device and no CUDA simulator")
def test_mixing_devices_names_both():
    a = tr.ones(3, device="cpu")
    b = tr.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="'cpu' and 'cuda'"):
        a + b


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tr.ones(2, device="tpu")


def test_setitem_errors():
    w = tr.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"in-place assignment .* shape \(3,\) .* autograd graph"):
        w[0] = 2.0
    h = w * 2
    with tr.no_grad(), pytest.raises(RuntimeError, match="autograd graph"):
        h[0] = 1.0  # saved for backward by the op that made it
    with pytest.raises(ValueError, match=r"value of shape \(5,\) to index 0 of a tensor of shape \(3, 4\)"):
        tr.zeros(3, 4)[0] = tr.ones(5)


def test_to_unknown_device_or_dtype():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tr.ones(2).to("tpu")
    with pytest.raises(TypeError, match="unsupported dtype complex64"):
        tr.ones(2).to("complex64")
