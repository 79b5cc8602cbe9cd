"""Volume classification (MedMNIST 3D) as a task on the shared loop: :func:`fit`, :func:`evaluate`,
:func:`predict_files` (NIfTI files, DICOM folders), :func:`explain_checkpoint` (3-D Grad-CAM montages).

    >>> from tinygrad_rad.tasks.classify3d import Classify3DConfig, fit
    >>> result = fit(Classify3DConfig(dataset="vesselmnist3d", out="runs/vessel3d"))
    >>> result["test_auc"], result["best_epoch"]

``tinygrad-rad train --dataset vesselmnist3d`` runs this task (every flag of
:data:`tinygrad_rad.data.medmnist.FLAGS_3D` does). One recipe serves all 3D flags, no per-dataset
tuning: ``SmallCNN3D`` (four 3x3x3 conv-BN-ReLU stages 16 -> 128 channels, two 2x2x2 max-pools,
global average pool, dropout 0.3, linear), Adam 1e-3 with a per-step cosine schedule, batch 32,
random flips along each axis (p = 0.5 each), the checkpoint of the best validation AUC tested once.
Label sets that name a body side (organmnist3d's "kidney-left") are not flipped: a mirror image
would turn a left organ into a right one.

The files of a run are the 2D task's (``last.safetensors``, ``best.safetensors``, ``history.csv``,
``metrics.json``, ``test_predictions.npz``, ``curves.png`` / ``roc.png`` / ``confusion_matrix.png``
with matplotlib); losses, metrics and the [-1, 1] input scaling (mean 0.5, std 0.5 of the uint8
voxels / 255) are those of :mod:`tinygrad_rad.tasks.classify`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tinygrad_rad as tr

from .. import models, plots
from ..autograd import no_grad
from ..checkpoint import config_from_checkpoint, load_checkpoint, read_checkpoint_info
from ..data import DataLoader
from ..data.medmnist import FLAGS_3D, SIZES_3D, get_info
from ..data.transforms import ct_window
from ..data.transforms3d import RandomFlip3d
from ..data.volumes import read_volume
from ..explain import class_gradients, find_target_layer, normalise_maps
from ..metrics import classification_report
from ..tensor import Tensor
from ..utils import ConfigDictMixin, default_data_dir, json_safe, write_json
from .classify import (
    ClassifyTask,
    Split,
    build,
    is_multilabel,
    load_dataset,
    loss_fn,
    make_optimizer,
    make_scheduler,
    prediction_rows,
    probabilities,
)
from .loop import TrainingInterrupted, resolve_checkpoint, train

__all__ = ["Classify3DConfig", "Classify3DTask", "fit", "evaluate", "predict", "predict_logits",
           "preprocess3d", "load_trained", "is_3d_checkpoint", "is_3d_dataset", "load_volume_for_model",
           "resize_volume",
           "evaluate_checkpoint", "predict_files", "explain_checkpoint", "grad_cam3d", "find_target_layer3d",
           "slice_montage", "flip_axes_for", "tta_options", "check_config", "KIND", "DEFAULT_EPOCHS",
           "TrainingInterrupted"]

KIND = "classification3d"  # the checkpoint's extra["kind"]
# NOTE: the reference recipe's 30 epochs fit the ~20 min budget of 2-core CPU training. Estimated from a few
# timed steps of the loop on VesselMNIST3D (not a full run) on the 2-core machine while shared (load 2.5-6):
# 0.6-0.8 s per batch-32 step (PyTorch 2.13: 1.0-1.2 s for the same model and batch at the same load)
# x 42 steps + ~2 s validation = 27-36 s per epoch -> 30 epochs in 14-18 min.
DEFAULT_EPOCHS = 30


@dataclass
class Classify3DConfig(ConfigDictMixin):
    """Everything that defines a 3D training run (stored in every checkpoint and in ``metrics.json``).

        >>> Classify3DConfig().model, Classify3DConfig().batch_size
        ('smallcnn3d', 32)
    """

    dataset: str = "vesselmnist3d"
    model: str = "smallcnn3d"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int | None = None
    gamma: float = 0.1
    augment: bool = True  # random flips along D, H and W (p = 0.5 each; none for side-named labels)
    label_smoothing: float = 0.0
    class_weight: str = "none"  # "balanced": cross-entropy weights n / (K n_k) from the training labels
    mixup: float = 0.0  # Beta(a, a) mixing of volume pairs (0: off)
    # NOTE: the weight average, precise batch-norm statistics and flip TTA were chosen on VesselMNIST3D's
    # validation split (benchmarks/recipe_search.py: AUC / ACC 0.8865 / 0.8901 -> 0.8913 / 0.9058, seed 0;
    # benchmarks/NOTES.md section 9)
    ema_epochs: float = 1.0  # time constant (epochs) of the weight average that is validated (0: off)
    precise_bn: int = 512  # batch-norm statistics recomputed on this many clean training volumes (0: off)
    tta: bool = True  # test-time augmentation: mean over the volume and its flips along the flipped axes
    train_subset: int | None = None  # a stratified random subset of the training split (subset_seed)
    subset_seed: int = 0
    size: int = 28
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    out: str = "runs/train3d"
    limit_train: int | None = None
    limit_eval: int | None = None
    num_threads: int | None = None
    plots: bool = True
    progress: bool = True
    download: bool = True

    # NOTE: a config stored before a field existed means that field's behaviour of the time, not today's
    # default (a run of the earlier 3D recipe resumes and evaluates as it started)
    LEGACY = {"ema_epochs": 0.0, "precise_bn": 0, "tta": False}

    @classmethod
    def from_dict(cls, d: dict) -> Classify3DConfig:
        return super().from_dict({**cls.LEGACY, **d})


def is_3d_dataset(name) -> bool:
    """True for a MedMNIST 3D flag (``vesselmnist3d``, ...)."""
    return isinstance(name, str) and name.lower() in FLAGS_3D


def check_config(cfg: Classify3DConfig) -> None:
    """Refuse a 2D flag, a size other than 28 / 64 and a 2D or unknown model, before any work starts."""
    if not is_3d_dataset(cfg.dataset):
        get_info(cfg.dataset)  # an unknown flag: the registry's message lists the flags
        raise ValueError(f"{cfg.dataset} is a 2D MedMNIST flag (tinygrad_rad.tasks.classify trains it); "
                         f"3D flags: {', '.join(FLAGS_3D)}")
    if int(cfg.size) not in SIZES_3D:
        raise ValueError(f"{cfg.dataset}: MedMNIST 3D volumes come in sizes {', '.join(map(str, SIZES_3D))}, "
                         f"got size {cfg.size}")
    known = sorted(k for k in models.MODELS_3D if k != "unet3d")
    name = cfg.model.lower()
    if name not in models.MODELS:
        raise ValueError(f"unknown model {cfg.model!r}; 3D models: {', '.join(known)}")
    if name not in models.MODELS_3D and not name.endswith("3d"):  # NOTE: "...3d": a 3-D model
        raise ValueError(f"model {cfg.model!r} is a 2D model; 3D volumes need one of {', '.join(known)}")


def flip_axes_for(label_names) -> tuple:
    """The axes the recipe flips: all three, none when a label names a side ("left" / "right")."""
    sided = any(w in str(n).lower() for n in label_names for w in ("left", "right"))
    return () if sided else (0, 1, 2)


# ------------------------------------------------------------------------------------------ data
def preprocess3d(volumes: np.ndarray) -> np.ndarray:
    """uint8 volumes (N, D, H, W) (or floats in [0, 1]) -> float32 (N, 1, D, H, W) in [-1, 1].

        >>> preprocess3d(np.zeros((2, 28, 28, 28), np.uint8)).shape
        (2, 1, 28, 28, 28)
    """
    v = np.asarray(volumes)
    if v.ndim != 4:
        raise ValueError(f"preprocess3d: expected volumes of shape (N, D, H, W), got {v.shape}")
    x = v[:, None].astype(np.float32)
    if v.dtype == np.uint8:
        x *= np.float32(1.0 / 255.0)
    return (x - np.float32(0.5)) / np.float32(0.5)


class VolumeSet:
    """A split as a dataset for :class:`~tinygrad_rad.data.DataLoader`: ``get_batch(idx, rng)`` gives
    (float32 (B, 1, D, H, W) in [-1, 1], flipped along ``flip_axes`` with p = 0.5 each when augmenting;
    labels int64 (B, L))."""

    def __init__(self, split: Split, flip_axes: tuple = (0, 1, 2), augment: bool = False):
        self.split = split
        self.flip = RandomFlip3d(0.5, axes=flip_axes) if (augment and flip_axes) else None

    def __len__(self) -> int:
        return int(len(self.split.images))

    def get_batch(self, indices, rng: np.random.Generator | None = None):
        idx = np.sort(np.asarray(indices, dtype=np.int64))
        x = preprocess3d(self.split.images[idx])
        if self.flip is not None:
            x = self.flip(x, rng=rng if rng is not None else np.random.default_rng())
        return np.ascontiguousarray(x, dtype=np.float32), self.split.labels[idx]


def make_loader(split: Split, cfg: Classify3DConfig, flip_axes: tuple):
    n = len(split.images)
    return DataLoader(VolumeSet(split, flip_axes, augment=cfg.augment), batch_size=cfg.batch_size,
                      shuffle=True, drop_last=(n % cfg.batch_size == 1), seed=cfg.seed, prefetch=2,
                      device=cfg.device)


# ------------------------------------------------------------------------------- eval / predict
def predict_logits(model, volumes: np.ndarray, batch_size: int = 64, device: str = "cpu",
                   flip_axes: tuple = ()) -> np.ndarray:
    """Model outputs (N, K) for uint8 volumes (N, D, H, W) in eval mode, without a graph; with
    ``flip_axes`` (test-time augmentation) the mean over the volume and its flips along each of them."""
    was_training = getattr(model, "training", False)
    model.eval()
    outs = []
    try:
        with no_grad():
            for i in range(0, len(volumes), batch_size):
                chunk = volumes[i:i + batch_size]
                views = [chunk] + [np.ascontiguousarray(np.flip(chunk, 1 + a)) for a in flip_axes]
                out = [model(Tensor(preprocess3d(v), device=device)).numpy() for v in views]
                outs.append(sum(o.astype(np.float64) for o in out) / len(views))
    finally:
        if was_training:
            model.train()
    return np.concatenate(outs) if outs else np.zeros((0, 0))


def predict(model, volumes: np.ndarray, task: str, batch_size: int = 64, device: str = "cpu",
            flip_axes: tuple = ()) -> np.ndarray:
    """Class probabilities (N, K) for uint8 volumes (softmax, or per-label sigmoid for multi-label)."""
    return probabilities(task, predict_logits(model, volumes, batch_size, device, flip_axes))


def evaluate(model, volumes: np.ndarray, labels: np.ndarray, task: str, batch_size: int = 64,
             device: str = "cpu", return_probs: bool = False, flip_axes: tuple = ()):
    """Loss + :func:`tinygrad_rad.metrics.classification_report` on a labelled set of volumes
    (``flip_axes``: test-time augmentation, see :func:`predict_logits`)."""
    logits = predict_logits(model, volumes, batch_size, device, flip_axes)
    labels = np.asarray(labels).astype(np.int64).reshape(len(logits), -1)
    with no_grad():
        loss = float(loss_fn(task, Tensor(logits.astype(np.float32)), labels).item())
    probs = probabilities(task, logits)
    res = classification_report(task, labels, probs)
    res["loss"] = loss
    return (res, probs) if return_probs else res


def tta_options(cfg, label_names) -> dict:
    """``{"flip_axes": ...}`` for :func:`evaluate` / :func:`predict` when the recipe uses test-time
    augmentation (the axes the recipe flips in training), else ``{}``."""
    return {"flip_axes": flip_axes_for(label_names)} if getattr(cfg, "tta", False) else {}


# ------------------------------------------------------------------------------------------ task
class Classify3DTask(ClassifyTask):
    """MedMNIST 3D classification on :func:`tinygrad_rad.tasks.loop.train`; best checkpoint by val AUC.

    The training step, progress, history rows and messages are the 2D task's; data, model, flips,
    validation and test are volumes."""

    name = "classify3d"
    evaluate_fn = staticmethod(evaluate)
    preprocess_fn = staticmethod(preprocess3d)

    def eval_options(self) -> dict:
        return tta_options(self.config, self.info.label_names)
    unit = "volumes"

    def setup(self, log) -> None:
        cfg = self.config
        check_config(cfg)
        self.load_splits()
        self.info.in_channels = 1  # NOTE: MedMNIST 3D volumes are gray (load_dataset guesses from 2D shapes)
        self.flip_axes = flip_axes_for(self.info.label_names)
        self.model = build(cfg.model, 1, self.info.n_outputs, cfg.device)
        self.optimizer = make_optimizer(cfg, self.model.parameters())
        self.loader = make_loader(self.train_split, cfg, self.flip_axes)
        self.scheduler = make_scheduler(cfg, self.optimizer, len(self.loader))
        self.setup_recipe()

    def describe(self) -> str:
        cfg, info = self.config, self.info
        n_params = sum(int(np.prod(p.shape)) for p in self.model.parameters())
        flips = "flips on " + ",".join("DHW"[a] for a in self.flip_axes) if self.flip_axes else "no flips"
        return (f"{cfg.dataset} ({info.task}, {cfg.size}^3 volumes): train {len(self.train_split.images)} / "
                f"val {len(self.val.images)} / test {len(self.test_split.images)} | {cfg.model} "
                f"({n_params:,} parameters) | {cfg.optimizer} lr {cfg.lr} batch {cfg.batch_size} "
                f"{cfg.scheduler} | {cfg.epochs} epochs | augment {cfg.augment} ({flips})"
                f"{self.recipe_notes()} | seed {cfg.seed} | out {cfg.out}")

    def checkpoint_extra(self, val) -> dict:
        info = self.info
        return {"kind": KIND, "task": info.task, "label_names": info.label_names, "in_channels": 1,
                "num_classes": info.n_outputs, "size": int(self.config.size)}

    def result_extra(self) -> dict:
        return {"flip_axes": list(self.flip_axes)}


def fit(config: Classify3DConfig, resume: bool = False, callbacks: Iterable[Callable] = (),
        log: Callable[[str], None] | None = None, keep: Iterable[str] = ()) -> dict:
    """Train, keep the best validation-AUC checkpoint, test it once; returns the metrics dict
    (``resume=True``: continue ``config.out/last.safetensors``; see :func:`tinygrad_rad.tasks.loop.train`)."""
    return train(Classify3DTask(config), resume=resume, callbacks=callbacks, log=log, keep=keep)


# ------------------------------------------------------------------------------------ checkpoints
def is_3d_checkpoint(path) -> bool:
    """True when ``path`` (a checkpoint or a run folder) holds a 3D classification run; False for
    anything else, a missing or unreadable file included (the 2D commands then say what is wrong)."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        return False
    try:
        extra = read_checkpoint_info(path).get("extra") or {}
    except Exception:
        return False
    return isinstance(extra, dict) and extra.get("kind") == KIND


def load_trained(path: str | os.PathLike, device: str = "cpu"):
    """Rebuild the model of a 3D training checkpoint (or run folder) -> ``(model in eval mode, meta)``;
    ``meta``: ``config``, ``task``, ``label_names``, ``num_classes``, ``size``, ``epoch``, ``path``."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    head = read_checkpoint_info(path)
    extra = head.get("extra") or {}
    if not head.get("config") or extra.get("kind") != KIND:
        raise ValueError(f"{path} is not a tinygrad-rad 3D classification checkpoint")
    cfg = config_from_checkpoint(Classify3DConfig, head["config"], path)
    model = build(cfg.model, 1, int(extra["num_classes"]), device)
    load_checkpoint(str(path), model=model)
    model.eval()
    meta = {"config": cfg, "task": extra["task"], "label_names": list(extra["label_names"]), "in_channels": 1,
            "num_classes": int(extra["num_classes"]), "size": int(extra.get("size", cfg.size)),
            "epoch": head.get("epoch"), "path": str(path)}
    return model, meta


# ------------------------------------------------------------------------- volumes from files
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of a 1-D resize: area averaging when shrinking (antialiased), linear
    interpolation with half-voxel centres (``align_corners=False``, as F.interpolate) when growing."""
    if n_out == n_in:
        return np.eye(n_in)
    f = n_in / n_out
    m = np.zeros((n_out, n_in))
    if f > 1:  # output voxel j covers [j f, (j + 1) f) of the input
        for j in range(n_out):
            lo, hi = j * f, (j + 1) * f
            for i in range(int(np.floor(lo)), min(n_in, int(np.ceil(hi)))):
                m[j, i] = min(hi, i + 1) - max(lo, i)
        return m / f
    src = np.clip((np.arange(n_out) + 0.5) * f - 0.5, 0.0, n_in - 1.0)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = src - i0
    m[np.arange(n_out), i0] += 1.0 - w
    m[np.arange(n_out), i1] += w
    return m


def resize_volume(a: np.ndarray, shape) -> np.ndarray:
    """Resize the last three axes of ``a`` to ``shape`` (separable: area when shrinking, linear when
    growing, see :func:`_resize_matrix`); float32 out."""
    a = np.asarray(a, dtype=np.float32)
    for k, n_out in enumerate(shape):
        axis = a.ndim - 3 + k
        if a.shape[axis] != n_out:
            m = _resize_matrix(a.shape[axis], int(n_out)).astype(np.float32)
            a = np.moveaxis(np.tensordot(m, np.moveaxis(a, axis, 0), axes=(1, 0)), 0, axis)
    return np.ascontiguousarray(a)


def load_volume_for_model(path, size: int = 28, window=None) -> np.ndarray:
    """A NIfTI file or DICOM folder as a MedMNIST-3D-like uint8 volume (size, size, size).

    The volume (axes S, P, L; :func:`tinygrad_rad.data.volumes.read_volume`) is centre-cropped to the
    largest physical cube it holds (voxel spacing respected), mapped to [0, 1] (``window``: a CT window
    name or ``(center, width)`` in HU; default: min-max between the 0.5 and 99.5 percentiles) and resized
    to ``size``^3 with area averaging (linear when it grows), then stored as uint8 like the training data.
    """
    vol = read_volume(path)
    a = np.asarray(vol.array, dtype=np.float32)
    if a.ndim != 3 or min(a.shape) < 2:
        raise ValueError(f"{path}: expected a 3-D volume with at least 2 voxels along each axis, got shape "
                         f"{a.shape}")
    sp = np.asarray(vol.spacing, dtype=np.float64)
    side = float(np.min(np.asarray(a.shape) * sp))
    crop = [int(min(n, max(2, round(side / s)))) for n, s in zip(a.shape, sp)]
    start = [(n - c) // 2 for n, c in zip(a.shape, crop)]
    a = a[tuple(slice(s, s + c) for s, c in zip(start, crop))]
    if window is not None:
        a = ct_window(a, *window) if isinstance(window, (tuple, list)) else ct_window(a, window)
    else:
        lo, hi = np.percentile(a, [0.5, 99.5])
        a = np.clip((a - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(a)
    a = resize_volume(a, (size, size, size))
    return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------- evaluate / predict / explain
def _split_of(meta: dict, dataset: str | None, split: str, data_dir: str | None):
    cfg = meta["config"]
    name = dataset or cfg.dataset
    if not is_3d_dataset(name):
        raise ValueError(f"{name} is not a MedMNIST 3D flag (the checkpoint is a 3D model); 3D flags: "
                         f"{', '.join(FLAGS_3D)}")
    data, info = load_dataset(name, meta["size"], data_dir or cfg.data_dir or default_data_dir(),
                              cfg.download, splits=(split,))
    if info.task != meta["task"] or info.n_outputs != meta["num_classes"]:
        raise ValueError(f"{name} ({info.task}, {info.n_outputs} outputs) does not match the checkpoint's "
                         f"task ({meta['task']}, {meta['num_classes']} outputs)")
    return name, data[split], info


def evaluate_checkpoint(checkpoint, dataset: str | None = None, split: str = "test",
                        data_dir: str | None = None, batch_size: int = 64, limit: int | None = None,
                        device: str = "cpu") -> dict:
    """Loss and classification metrics of a 3D checkpoint on a split (default: its own dataset)."""
    model, meta = load_trained(checkpoint, device)
    name, part, _ = _split_of(meta, dataset, split, data_dir)
    if limit:
        part = Split(part.images[:limit], part.labels[:limit])
    res = evaluate(model, part.images, part.labels, meta["task"], batch_size, device,
                   **tta_options(meta["config"], meta["label_names"]))
    return json_safe({**res, "dataset": name, "split": split, "n": len(part.images),
                      "checkpoint": meta["path"], "epoch": meta["epoch"], "version": tr.__version__})


def predict_files(checkpoint, paths: Iterable, device: str = "cpu", window=None) -> list[dict]:
    """Class probabilities of volumes (``.nii`` / ``.nii.gz`` files, DICOM folders) ->
    ``[{"image", "probabilities": {label: p}, "prediction"}]`` (see :func:`load_volume_for_model`)."""
    model, meta = load_trained(checkpoint, device)
    names, paths = meta["label_names"], list(paths)
    vols = np.stack([load_volume_for_model(p, meta["size"], window) for p in paths])
    probs = predict(model, vols, meta["task"], device=device,
                    **tta_options(meta["config"], meta["label_names"]))
    return prediction_rows(paths, probs, names, meta["task"])


def find_target_layer3d(model, x: Tensor) -> str:
    """Name of the last module whose output is a (N, K, d, h, w) feature map with d, h, w > 1 that is
    not a pooling output (``features`` of SmallCNN3D, ``layer4`` of ResNet3D)."""
    return find_target_layer(model, x, ndim=5)


def grad_cam3d(model, x, target=None, target_layer: str | None = None):
    """3-D Grad-CAM: ``alpha_k = mean_{dhw} dy_c / dA_k``, ``cam = relu(sum_k alpha_k A_k)`` upsampled
    (trilinear, half-voxel centres) to the input; plus the gradient saliency ``|dy_c / dx|``.

    ``x``: float32 (N, C, D, H, W), preprocessed. Returns ``(cams (N, D, H, W), saliency (N, D, H, W),
    logits (N, K), target (N,))``; the maps are in [0, 1] (each by its own max).

        >>> cams, sal, logits, target = grad_cam3d(model, preprocess3d(volumes), target=1)
    """
    xa = x.numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float32)
    device = x.device if isinstance(x, Tensor) else "cpu"
    if xa.ndim != 5:
        raise ValueError(f"3D Grad-CAM: expected input (N, C, D, H, W), got shape {xa.shape}")
    a, g, gx, lg, tgt = class_gradients(model, xa, device, target, target_layer, ndim=5)
    cam = np.maximum((g.mean(axis=(2, 3, 4), keepdims=True) * a).sum(axis=1), 0.0)
    cam = np.maximum(resize_volume(cam, xa.shape[2:]).astype(np.float64), 0.0)
    sal = np.abs(gx).max(axis=1)
    return normalise_maps(cam), normalise_maps(sal), lg, tgt


def _jet(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)[..., None]
    return np.clip(1.5 - np.abs(4.0 * t - np.array([3.0, 2.0, 1.0])), 0.0, 1.0)


def slice_montage(volumes, cams=None, n_slices: int = 8, scale: int = 3, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8 montage of axial slices (axis D): per volume a row of ``n_slices`` evenly spaced slices
    and, with ``cams``, a second row with the Grad-CAM heat map (jet) blended in; white 2-px gutters.

    ``volumes`` (N, D, H, W) (uint8 or floats, each min-max scaled), ``cams`` (N, D, H, W) in [0, 1].
    Write it with :func:`tinygrad_rad.plots.write_png`.
    """
    vols = np.asarray(volumes, dtype=np.float64)
    if vols.ndim == 3:
        vols = vols[None]
        cams = None if cams is None else np.asarray(cams)[None]
    if vols.ndim != 4 or len(vols) == 0:
        raise ValueError(f"slice_montage: expected volumes (N, D, H, W), got shape {np.shape(volumes)}")
    n, d, h, w = vols.shape
    idx = np.unique(np.round(np.linspace(0, d - 1, min(n_slices, d))).astype(np.int64))
    gut = 2
    rows_per = 1 if cams is None else 2
    tile_h, tile_w = h * scale, w * scale
    out = np.full((n * rows_per * (tile_h + gut) + gut, len(idx) * (tile_w + gut) + gut, 3), 255, np.uint8)
    for i in range(n):
        v = vols[i]
        lo, hi = float(v.min()), float(v.max())
        v = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
        for c, s in enumerate(idx):
            gray = np.repeat(v[s][..., None], 3, axis=2)
            tiles = [gray]
            if cams is not None:
                cam = np.asarray(cams[i][s], dtype=np.float64)
                tiles.append((1.0 - alpha * cam[..., None]) * gray + alpha * cam[..., None] * _jet(cam))
            for r, tile in enumerate(tiles):
                y = gut + (i * rows_per + r) * (tile_h + gut)
                x = gut + c * (tile_w + gut)
                big = tile.repeat(scale, 0).repeat(scale, 1)
                out[y:y + tile_h, x:x + tile_w] = np.clip(np.round(big * 255.0), 0, 255).astype(np.uint8)
    return out


def explain_checkpoint(checkpoint, out, dataset: str | None = None, split: str = "test",
                       data_dir: str | None = None, n: int = 8, seed: int = 0,
                       target_class: int | None = None, layer: str | None = None, device: str = "cpu",
                       n_slices: int = 8, files: Iterable | None = None, window=None) -> dict:
    """3-D Grad-CAM of ``n`` volumes of a split (a seeded random sample), or of volume ``files`` (NIfTI
    files, DICOM folders; read as :func:`predict_files` does): writes ``out/explanations.npz`` (cams,
    saliency, probabilities), ``out/gradcam_montage.png`` (per volume a row of axial slices and a row with
    the CAM overlaid) and ``out/explanations.json`` (what each row shows). Returns what it did."""
    model, meta = load_trained(checkpoint, device)
    names = meta["label_names"]

    def nm(j):
        return names[j] if j < len(names) else str(j)

    files = [str(f) for f in files] if files else []
    if files:
        name, split = "files", "files"
        vols = np.stack([load_volume_for_model(f, meta["size"], window) for f in files])
        idx, truths = np.arange(len(files)), [None] * len(files)
    else:
        name, part, _ = _split_of(meta, dataset, split, data_dir)
        k = min(int(n), len(part.images))
        idx = np.sort(np.random.default_rng(seed).choice(len(part.images), k, replace=False))
        vols = part.images[idx]
        if is_multilabel(meta["task"]):
            truths = [[nm(j) for j in np.flatnonzero(part.labels[i])] for i in idx]
        else:
            truths = [nm(int(part.labels[i, 0])) for i in idx]
    x = preprocess3d(vols)
    layer = layer or find_target_layer3d(model, Tensor(x[:1], device=device))
    cams, sal, logits, target = grad_cam3d(model, Tensor(x, device=device), target_class, layer)
    probs = probabilities(meta["task"], logits)
    rows = []
    for i in range(len(vols)):
        row = {"row": i, "file": files[i]} if files else {"row": i, "index": int(idx[i]), "true": truths[i]}
        rows.append({**row, "explained": nm(int(target[i])), "probability": float(probs[i, int(target[i])])})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "explanations.npz", indices=idx, cams=cams.astype(np.float32),
             saliency=sal.astype(np.float32), probs=probs, target=target)
    png = plots.write_png(out / "gradcam_montage.png", slice_montage(vols, cams, n_slices))
    write_json(out / "explanations.json", {"layer": layer, "dataset": name, "split": split,
                                           "checkpoint": meta["path"], "rows": rows})
    return {"layer": layer, "n": len(vols), "dataset": name, "split": split,
            "npz": str(out / "explanations.npz"), "png": str(png), "rows": rows}
