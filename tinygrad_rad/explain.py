"""Grad-CAM and gradient saliency, computed with this framework's own backward pass.

    >>> from tinygrad_rad.explain import grad_cam
    >>> cams, sal, logits, target = grad_cam(model, x)     # x: float32 (N, C, H, W), model in eval mode
    >>> cams.shape, sal.shape                               # (N, H, W) each, scaled to [0, 1]

Grad-CAM (Selvaraju et al. 2017): for the feature maps ``A`` (N, K, h, w) of the last conv block and
the score ``y_c`` of the target class, ``alpha_k = mean_{ij} dy_c / dA_k[ij]`` and
``cam = relu(sum_k alpha_k A_k)``, upsampled bilinearly to the input size. The feature maps are caught
by temporarily wrapping the chosen module's ``forward`` and kept with ``Tensor.retain_grad()``; the
same backward also gives ``dy_c / dx``, whose absolute value (max over channels) is the gradient
saliency map (Simonyan et al. 2014).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from .autograd import no_grad
from .nn import functional as F
from .tensor import Tensor


@contextmanager
def capture_outputs(modules: dict) -> Iterator[list]:
    """Record ``(name, module, output)`` of each given module, in the order their forwards finish.

        >>> with capture_outputs(dict(model.named_modules())) as rec:
        ...     model(x)
    """
    records: list = []
    patched = []
    for name, m in modules.items():
        orig = m.forward

        def wrapper(*args, _orig=orig, _name=name, _m=m, **kwargs):
            out = _orig(*args, **kwargs)
            records.append((_name, _m, out))
            return out

        # NOTE: an instance attribute shadows the class's forward; Module.__call__ calls self.forward
        object.__setattr__(m, "forward", wrapper)
        patched.append(m)
    try:
        yield records
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)


def _is_pool(m) -> bool:
    return "pool" in type(m).__name__.lower()


def _what(ndim: int) -> str:
    return "Grad-CAM" if ndim == 4 else "3D Grad-CAM"


def find_target_layer(model, x: Tensor, ndim: int = 4) -> str:
    """Name of the last module whose output is a (N, K, h, w) feature map with h, w > 1, skipping pooling
    (``ndim=5``: a (N, K, d, h, w) map of a 3-D model).

    That is the output of the last conv block (e.g. ``layer4`` of a ResNet, the last conv+BN+ReLU of
    SmallCNN). A container whose output is a pooling layer's output is skipped too.
    """
    mods = {n: m for n, m in model.named_modules() if n}
    with no_grad(), capture_outputs(mods) as rec:
        model(x[:1] if len(x) > 1 else x)
    pooled = {id(out) for _, m, out in rec if _is_pool(m)}
    best = None
    for name, m, out in rec:
        if (isinstance(out, Tensor) and out.ndim == ndim and min(out.shape[2:]) > 1
                and not _is_pool(m) and id(out) not in pooled):
            best = name
    if best is None:
        raise ValueError(f"{_what(ndim)}: {type(model).__name__} has no module with a {ndim}-D feature-map "
                         "output of spatial size > 1; name one with target_layer=")
    return best


def normalise_maps(maps: np.ndarray) -> np.ndarray:
    """Scale each map of (N, H, W) (or (N, D, H, W)) to [0, 1] by its own max (all-zero maps stay zero)."""
    m = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, *([1] * (maps.ndim - 1)))
    return np.where(m > 0, maps / np.where(m > 0, m, 1.0), 0.0)


def class_gradients(model, xa: np.ndarray, device: str, target=None, target_layer: str | None = None,
                    ndim: int = 4):
    """The steps Grad-CAM and saliency share, for images (``ndim=4``) or volumes (5): in eval mode, with
    the parameters' ``requires_grad`` off (restored after), one forward catching the target layer's
    output ``A`` and one backward of ``sum_n y_{n, c_n}``.

    Returns ``(A, dy/dA, dy/dx, logits, target)`` as float64 arrays (logits as the model gave them,
    target int64 (N,)).
    """
    what = _what(ndim)
    was_training = getattr(model, "training", False)
    model.eval()
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:  # only input / activation gradients are needed
        p.requires_grad = False
    try:
        probe = Tensor(xa, device=device)
        name = target_layer or find_target_layer(model, probe, ndim)
        layer = dict(model.named_modules()).get(name)
        if layer is None:
            raise ValueError(f"{what}: {type(model).__name__} has no module named {name!r}")
        xt = Tensor(xa, requires_grad=True, device=device)
        with capture_outputs({name: layer}) as rec:
            logits = model(xt)
        if ndim == 5 and (not rec or not isinstance(rec[-1][2], Tensor) or rec[-1][2].ndim != 5):
            raise ValueError(f"{what}: layer {name!r} gave no (N, K, d, h, w) output in the forward pass")
        if not rec:
            raise ValueError(f"{what}: layer {name!r} did not run in the forward pass")
        feats = rec[-1][2]
        if not isinstance(feats, Tensor) or feats.ndim != ndim:
            raise ValueError(f"{what}: layer {name!r} output is not a (N, K, h, w) tensor")
        feats.retain_grad()
        lg = logits.numpy()
        n, k = lg.shape
        if target is None:
            tgt = lg.argmax(axis=1)
        else:
            tgt = np.broadcast_to(np.asarray(target, dtype=np.int64), (n,)).copy()
            if (tgt < 0).any() or (tgt >= k).any():
                raise ValueError(f"{what}: target class {tgt} out of range for {k} outputs")
        onehot = np.zeros((n, k), dtype=lg.dtype)
        onehot[np.arange(n), tgt] = 1.0
        # score = sum_n y_{n, c_n}: images are independent in eval mode, so one backward serves the batch
        (logits * Tensor(onehot, device=device)).sum().backward()
        return (feats.numpy().astype(np.float64), feats.grad.numpy().astype(np.float64),
                xt.grad.numpy().astype(np.float64), lg, tgt)
    finally:
        for p, f in zip(params, flags):
            p.requires_grad = f
        if was_training:
            model.train()


def grad_cam(model, x, target=None, target_layer: str | None = None):
    """Grad-CAM maps, gradient saliency maps, logits and the explained class for a batch.

    ``x``: float32 (N, C, H, W) array or Tensor, already preprocessed. ``target``: None (explain each
    image's predicted class), an int, or one class index per image. Returns ``(cams (N, H, W),
    saliency (N, H, W), logits (N, K), target (N,))``; the maps are in [0, 1].

        >>> cams, sal, logits, target = grad_cam(model, x, target=1)   # why "pneumonia"?
    """
    xa = x.numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
    device = x.device if isinstance(x, Tensor) else "cpu"
    a, g, gx, lg, tgt = class_gradients(model, xa, device, target, target_layer)
    # alpha_k = spatial mean of dy/dA_k; cam = relu(sum_k alpha_k A_k)
    cam = np.maximum((g.mean(axis=(2, 3), keepdims=True) * a).sum(axis=1), 0.0)
    h, w = xa.shape[2], xa.shape[3]
    if cam.shape[1:] != (h, w):
        up = F.interpolate(Tensor(cam[:, None].astype(np.float32)), size=(h, w), mode="bilinear",
                           align_corners=False)
        cam = up.numpy()[:, 0].astype(np.float64)
    sal = np.abs(gx).max(axis=1)
    return normalise_maps(np.maximum(cam, 0.0)), normalise_maps(sal), lg, tgt


def saliency(model, x, target=None) -> np.ndarray:
    """Gradient saliency ``|dy_c / dx|`` (max over channels), (N, H, W) in [0, 1]."""
    return grad_cam(model, x, target)[1]
