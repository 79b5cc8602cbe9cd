"""Image classification training as a library: :func:`fit` (a whole run), :func:`evaluate`, :func:`predict`.

    >>> from tinygrad_rad.train import TrainConfig, fit
    >>> result = fit(TrainConfig(dataset="pneumoniamnist", epochs=2, out="runs/try"))
    >>> result["test_auc"], result["test_acc"], result["best_epoch"]

A run writes into ``config.out``: ``last.safetensors`` (every epoch, and on Ctrl-C), ``best.safetensors``
(best validation AUC), ``history.csv``, ``metrics.json`` (test metrics of the best checkpoint, measured
once at the end) and PNG plots. ``fit(config, resume=True)`` continues an interrupted run to exactly the
result an uninterrupted run would have given: each epoch's shuffling and each batch's augmentation are
drawn by the :class:`~tinygrad_rad.data.DataLoader` from generators seeded by ``(seed, epoch[, batch])``,
and the global generator (dropout) is saved in the checkpoint with the loader's position.

Loss and metrics follow the MedMNIST conventions: binary tasks use a 2-class softmax cross-entropy (AUC on
the positive-class probability, ACC at argmax), multi-class tasks cross-entropy (macro one-vs-rest AUC),
multi-label tasks BCE-with-logits (macro AUC, ACC at 0.5 averaged over labels). Inputs are scaled to
[-1, 1] (mean 0.5, std 0.5). The threshold stays at 0.5 / argmax: nothing is tuned on the test split.
"""

from __future__ import annotations

import csv
import io
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import tinygrad_rad as tr

from .autograd import no_grad
from .nn import functional as F
from .tensor import Tensor
from .utils import ConfigDictMixin, ProgressBar, atomic_write_text, default_data_dir, json_safe, write_json

# The default recipe (PneumoniaMNIST, 2-core CPU, <= 15 minutes of training): the SmallCNN reference
# recipe (Adam 1e-3, batch 128, cosine schedule, random affine augmentation without flips), with 20
# epochs instead of the reference's 30 so that it fit the time budget at the CPU speed of the time
# (~125 img/s: 12.6 min); with the current kernels the 20 epochs take 3-4 min (README, demo section).
DEFAULT_EPOCHS = 20
LAST_NAME = "last.safetensors"
BEST_NAME = "best.safetensors"


@dataclass
class TrainConfig(ConfigDictMixin):
    """Everything that defines a training run (stored in every checkpoint and in ``metrics.json``).

        >>> TrainConfig(dataset="breastmnist", epochs=5).model
        'smallcnn'
    """

    dataset: str = "pneumoniamnist"
    model: str = "smallcnn"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    eval_batch_size: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    warmup_epochs: float = 0.0
    step_size: int | None = None
    gamma: float = 0.1
    augment: bool = True
    rotation: float = 10.0
    translate: float = 2.0 / 28.0
    scale: tuple = (0.9, 1.1)
    size: int = 28
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    out: str = "runs/train"
    limit_train: int | None = None
    limit_eval: int | None = None
    num_threads: int | None = None
    plots: bool = True
    progress: bool = True
    download: bool = True

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["scale"] = list(self.scale)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        cfg = super().from_dict(d)
        cfg.scale = tuple(cfg.scale)
        return cfg


class TrainingInterrupted(KeyboardInterrupt):
    """From :func:`fit` after Ctrl-C (or a callback's stop request), once ``last.safetensors`` is saved."""

    def __init__(self, checkpoint: str, out: str, epoch: int, step: int):
        super().__init__(f"training interrupted at epoch {epoch + 1}, step {step}; saved {checkpoint}")
        self.checkpoint, self.out, self.epoch, self.step = checkpoint, out, epoch, step


# ----------------------------------------------------------------------------------------- tasks
def is_multilabel(task: str) -> bool:
    return task.startswith("multi-label")


def is_binary(task: str) -> bool:
    return task == "binary-class"


def num_outputs(task: str, n_labels: int) -> int:
    """Logits the model needs: 2 for binary (softmax, MedMNIST convention), one per label/class otherwise."""
    return 2 if is_binary(task) else int(n_labels)


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) scaled to [-1, 1] (mean 0.5, std 0.5).

        >>> preprocess(np.zeros((2, 28, 28), np.uint8)).shape
        (2, 1, 28, 28)
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        x = x.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"preprocess: expected images of shape (N, H, W) or (N, H, W, C), got {x.shape}")
    x = x.astype(np.float32)
    if np.asarray(images).dtype == np.uint8:
        x *= 1.0 / 255.0
    return (x - 0.5) / 0.5


def loss_fn(task: str, logits: Tensor, labels) -> Tensor:
    """Cross-entropy for binary/multi-class (labels (N, 1) class indices), BCE-with-logits for multi-label."""
    labels = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if is_multilabel(task):
        target = Tensor(labels.astype(logits.dtype), device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, target)
    return F.cross_entropy(logits, Tensor(labels.reshape(-1).astype(np.int64), device=logits.device))


def probabilities(task: str, logits: np.ndarray) -> np.ndarray:
    """Softmax (or sigmoid for multi-label) of logits (N, K), in float64."""
    z = np.asarray(logits, dtype=np.float64)
    if is_multilabel(task):
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _correct(task: str, logits: np.ndarray, labels) -> float:
    """Number of correct predictions (for multi-label: correct label decisions / number of labels)."""
    labels = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if is_multilabel(task):
        return float(((logits > 0) == (labels > 0)).mean(axis=1).sum())
    return float((logits.argmax(axis=1) == labels.reshape(-1)).sum())


# --------------------------------------------------------------------------------------- metrics
def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula with tied scores averaged; nan with one class."""
    from . import metrics as M

    if hasattr(M, "roc_auc_score"):
        try:
            return float(M.roc_auc_score(y, s))
        except ValueError:
            return float("nan")
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = np.asarray(s)[order]
    _, start, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def compute_metrics(task: str, y_true: np.ndarray, y_prob: np.ndarray) -> dict:
    """AUC, ACC, sensitivity, specificity (+ PPV, NPV, F1, balanced accuracy, confusion matrix).

    Binary: on the positive-class probability at threshold 0.5. Multi-class: macro one-vs-rest AUC,
    argmax ACC, macro sensitivity/specificity. Multi-label: macro over labels at threshold 0.5.

        >>> compute_metrics("binary-class", np.array([[0], [1]]), np.array([[0.8, 0.2], [0.3, 0.7]]))["acc"]
        1.0
    """
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    out: dict[str, Any] = {}
    if is_multilabel(task):
        pred = y_prob >= 0.5
        truth = y_true > 0
        aucs = [_auc(truth[:, j], y_prob[:, j]) for j in range(truth.shape[1])]
        out["auc"] = float(np.nanmean(aucs)) if not all(np.isnan(aucs)) else float("nan")
        out["acc"] = float((pred == truth).mean())
        tp = (pred & truth).sum(0)
        tn = (~pred & ~truth).sum(0)
        fp = (pred & ~truth).sum(0)
        fn = (~pred & truth).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sens, spec = tp / (tp + fn), tn / (tn + fp)
            ppv, npv = tp / (tp + fp), tn / (tn + fn)
            f1 = 2 * tp / (2 * tp + fp + fn)
        out["per_label_auc"] = [float(a) for a in aucs]
    else:
        labels = y_true.reshape(-1).astype(np.int64)
        k = y_prob.shape[1]
        pred = y_prob.argmax(axis=1)
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (labels, pred), 1)
        out["confusion_matrix"] = cm.tolist()
        out["acc"] = float((pred == labels).mean()) if len(labels) else float("nan")
        if k == 2:
            out["auc"] = _auc(labels == 1, y_prob[:, 1])
            tn, fp, fn, tp = cm[0, 0], cm[0, 1], cm[1, 0], cm[1, 1]
            tp, tn, fp, fn = (np.array([v]) for v in (tp, tn, fp, fn))
        else:
            aucs = [_auc(labels == j, y_prob[:, j]) for j in range(k)]
            out["auc"] = float(np.nanmean(aucs)) if not all(np.isnan(aucs)) else float("nan")
            out["per_class_auc"] = [float(a) for a in aucs]
            tp = np.diag(cm)
            fp = cm.sum(0) - tp
            fn = cm.sum(1) - tp
            tn = cm.sum() - tp - fp - fn
        with np.errstate(invalid="ignore", divide="ignore"):
            sens, spec = tp / (tp + fn), tn / (tn + fp)
            ppv, npv = tp / (tp + fp), tn / (tn + fn)
            f1 = 2 * tp / (2 * tp + fp + fn)

    def _m(v):
        v = np.asarray(v, dtype=np.float64)
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    out["sensitivity"], out["specificity"] = _m(sens), _m(spec)
    out["ppv"], out["npv"], out["f1"] = _m(ppv), _m(npv), _m(f1)
    out["balanced_accuracy"] = (out["sensitivity"] + out["specificity"]) / 2.0
    return out


# ------------------------------------------------------------------------------------------ data
@dataclass
class Split:
    images: np.ndarray  # uint8 (N, H, W) or (N, H, W, C)
    labels: np.ndarray  # int64 (N, L)


@dataclass
class DatasetInfo:
    name: str
    task: str
    label_names: list
    in_channels: int
    size: int

    @property
    def n_outputs(self) -> int:
        return num_outputs(self.task, len(self.label_names))


def load_dataset(name: str, size: int = 28, data_dir: str | None = None, download: bool = True,
                 splits: Iterable[str] = ("train", "val", "test")) -> tuple[dict, DatasetInfo]:
    """Load MedMNIST splits through :func:`tinygrad_rad.data.load_medmnist` -> ({split: Split}, info)."""
    from .data import load_medmnist

    out, info = {}, None
    for split in splits:
        ds = load_medmnist(name, split, size=size, data_dir=data_dir, download=download)
        images = np.asarray(ds.images)
        labels = np.asarray(ds.labels).astype(np.int64)
        if labels.ndim == 1:
            labels = labels[:, None]
        out[split] = Split(images, labels)
        if info is None:
            task = str(getattr(ds, "task", None) or (getattr(ds, "info", None) or {}).get("task"))
            names = list(getattr(ds, "label_names", None) or [])
            if not names:
                k = labels.shape[1] if is_multilabel(task) else int(labels.max()) + 1
                names = [str(i) for i in range(max(k, 2))]
            channels = 3 if images.ndim == 4 and images.shape[-1] == 3 else 1
            info = DatasetInfo(name, task, names, channels, int(images.shape[1]))
    return out, info


def _limit(split: Split, n: int | None) -> Split:
    if n is None or n >= len(split.images):
        return split
    return Split(split.images[:n], split.labels[:n])


class ClassificationSet:
    """A split as a dataset for :class:`~tinygrad_rad.data.DataLoader`: ``get_batch(idx, rng)`` gives
    (float32 (B, C, H, W) in [-1, 1], randomly affine-augmented when ``augment``; labels int64 (B, L)).
    """

    def __init__(self, split: Split, cfg: TrainConfig | None = None, augment: bool = False):
        from .data.transforms import RandomAffine

        self.split, self.augment = split, bool(augment)
        c = cfg or TrainConfig()
        # torchvision-style RandomAffine: rotation, shift (fraction of the size), zoom; NO flips
        self.affine = RandomAffine(c.rotation, translate=(c.translate, c.translate), scale=tuple(c.scale))

    def __len__(self) -> int:
        return int(len(self.split.images))

    def get_batch(self, indices, rng: np.random.Generator | None = None):
        idx = np.sort(np.asarray(indices, dtype=np.int64))
        x = preprocess(self.split.images[idx])
        if self.augment:
            rng = rng if rng is not None else np.random.default_rng()
            # augment in [0, 1] pixel space so that the zero fill is black, then renormalise
            x = (self.affine(x * 0.5 + 0.5, rng=rng) - 0.5) / 0.5
        return np.ascontiguousarray(x, dtype=np.float32), self.split.labels[idx]


def steps_per_epoch(n: int, batch_size: int) -> int:
    # NOTE: a final batch of one image is dropped (batch norm needs > 1 value per channel)
    full, rem = divmod(n, batch_size)
    return full + (1 if rem > 1 else 0)


def make_loader(split: Split, cfg: TrainConfig):
    """The seeded, shuffled, augmenting, prefetching training loader (resumable via ``state_dict``)."""
    from .data import DataLoader

    n = len(split.images)
    return DataLoader(ClassificationSet(split, cfg, augment=cfg.augment), batch_size=cfg.batch_size,
                      shuffle=True, drop_last=(n % cfg.batch_size == 1), seed=cfg.seed, prefetch=2,
                      device=cfg.device)


# ------------------------------------------------------------------------- model / optimisation
def build(name: str, in_channels: int, num_classes: int, device: str = "cpu"):
    """``tinygrad_rad.models.build_model`` moved to ``device``."""
    from .models import build_model

    model = build_model(name, in_channels=in_channels, num_classes=num_classes)
    if device != "cpu" and hasattr(model, "to"):
        model = model.to(device)
    return model


def make_optimizer(cfg: TrainConfig, params):
    from . import optim

    params = list(params)
    name = cfg.optimizer.lower()
    if name == "adam":
        return optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                         nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adam, adamw or sgd")


def lr_factor(cfg: TrainConfig, step: int, steps_per_ep: int) -> float:
    """The learning-rate multiplier after ``step`` optimizer steps (linear warmup, then the schedule).

    cosine: ``0.5 (1 + cos(pi t))`` over the post-warmup steps; step: ``gamma ** (epoch // step_size)``
    (step_size defaults to half the epochs, MedMNIST's x0.1 at 50% and 75% when 'multistep').
    """
    total = max(1, cfg.epochs * steps_per_ep)
    warm = int(round(cfg.warmup_epochs * steps_per_ep))
    if warm > 0 and step < warm:
        return (step + 1) / warm
    kind = cfg.scheduler.lower()
    if kind in ("none", "constant"):
        return 1.0
    if kind == "cosine":
        t = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    epoch = step // max(1, steps_per_ep)
    if kind == "step":
        size = cfg.step_size or max(1, cfg.epochs // 2)
        return cfg.gamma ** (epoch // size)
    if kind == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in (int(0.5 * cfg.epochs), int(0.75 * cfg.epochs)))
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}; choose cosine, step, multistep or none")


def make_scheduler(cfg: TrainConfig, optimizer, steps_per_ep: int):
    """A per-step ``LambdaLR`` running :func:`lr_factor`."""
    from .optim import lr_scheduler

    return lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_ep))


def current_lr(optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# ------------------------------------------------------------------------------- eval / predict
def predict_logits(model, images: np.ndarray, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Model outputs (N, K) for uint8 images (N, H, W[, C]) in eval mode, without a graph."""
    was_training = getattr(model, "training", False)
    model.eval()
    outs = []
    try:
        with no_grad():
            for i in range(0, len(images), batch_size):
                x = Tensor(preprocess(images[i:i + batch_size]), device=device)
                outs.append(model(x).numpy().astype(np.float64))
    finally:
        if was_training:
            model.train()
    if not outs:
        return np.zeros((0, 0))
    return np.concatenate(outs)


def predict(model, images: np.ndarray, task: str, batch_size: int = 256, device: str = "cpu") -> np.ndarray:
    """Class probabilities (N, K) for uint8 images: softmax, or per-label sigmoid for multi-label.

        >>> p = predict(model, test.images[:4], "binary-class")   # p[:, 1] = P(pneumonia)
    """
    return probabilities(task, predict_logits(model, images, batch_size, device))


def evaluate(model, images: np.ndarray, labels: np.ndarray, task: str, batch_size: int = 256,
             device: str = "cpu", return_probs: bool = False):
    """Loss + :func:`compute_metrics` of ``model`` on a labelled set (eval mode, no graph).

        >>> evaluate(model, test.images, test.labels, "binary-class")["auc"]
    """
    logits = predict_logits(model, images, batch_size, device)
    labels = np.asarray(labels).astype(np.int64)
    if labels.ndim == 1:
        labels = labels[:, None]
    with no_grad():
        loss = float(loss_fn(task, Tensor(logits.astype(np.float32)), labels).item())
    probs = probabilities(task, logits)
    res = compute_metrics(task, labels, probs)
    res["loss"] = loss
    return (res, probs) if return_probs else res


# ------------------------------------------------------------------------------------ utilities
def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads (``--num-threads``) for Numba's loops, the batch-split conv kernels and BLAS;
    None keeps all cores (``kernels.threads.set_num_threads``).

    # NOTE: measured on the project's 2-core CPU (benchmarks/NOTES.md): when another process holds a core,
    # anything running 2 threads in lock step (our kernels and PyTorch alike) gets 2-3x slower, so on a busy
    # machine pass ``--num-threads 1``; on an idle one all cores win.
    """
    if not n:
        return
    from .kernels.threads import set_num_threads as set_threads

    set_threads(int(n))


HISTORY_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_auc", "val_acc", "epoch_seconds",
                  "images_per_second"]


def write_history_csv(path: str | os.PathLike, history: list) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


class _SigintGuard:
    """Turn the first Ctrl-C into a stop request checked between steps; a second one aborts at once."""

    def __init__(self):
        self.stop = False
        self._old = None

    def _handler(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\nCtrl-C: saving a checkpoint after this step (press again to abort without saving)",
              file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


# ------------------------------------------------------------------------------------------- fit
def _save(path: Path, model, optimizer, scheduler, cfg: TrainConfig, info: DatasetInfo, epoch: int,
          state: dict) -> None:
    from .checkpoint import save_checkpoint

    extra = {"train_state": json_safe(state), "rng": tr.get_rng_state(), "task": info.task,
             "label_names": info.label_names, "in_channels": info.in_channels, "num_classes": info.n_outputs,
             "version": tr.__version__}
    save_checkpoint(str(path), model, optimizer=optimizer, scheduler=scheduler, epoch=epoch,
                    config=cfg.to_dict(), extra=extra)


def _fresh_state() -> dict:
    return {"epoch": 0, "step": 0, "history": [], "best_auc": None, "best_epoch": None, "train_seconds": 0.0,
            "train_images": 0, "partial": {"loss_sum": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}}


def fit(config: TrainConfig, resume: bool = False, callbacks: Iterable[Callable] = (),
        log: Callable[[str], None] | None = None) -> dict:
    """Train, keep the best validation-AUC checkpoint, then test it once. Returns the metrics dict.

    ``resume=True`` continues from ``config.out/last.safetensors`` (with the config stored there).
    ``callbacks`` are called as ``cb(event, info)`` with event ``"step"`` or ``"epoch"``; returning
    True requests a stop exactly as Ctrl-C does (``last.safetensors`` is saved, then
    :class:`TrainingInterrupted` is raised).
    """
    from .checkpoint import load_checkpoint

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    cfg = config
    out = Path(cfg.out)
    last_path, best_path = out / LAST_NAME, out / BEST_NAME
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"cannot resume: {last_path} does not exist")
        stored = load_checkpoint(str(last_path))
        keep = {"device": cfg.device, "num_threads": cfg.num_threads, "progress": cfg.progress,
                "plots": cfg.plots, "out": str(out)}
        if cfg.data_dir is not None:
            keep["data_dir"] = cfg.data_dir
        cfg = TrainConfig.from_dict({**stored["config"], **keep})
    if not resume and last_path.is_file():
        log(f"note: {out} already holds a run; starting over (continue it instead with --resume {out})")
    out.mkdir(parents=True, exist_ok=True)
    set_num_threads(cfg.num_threads)
    tr.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))

    data, info = load_dataset(cfg.dataset, cfg.size, cfg.data_dir or default_data_dir(), cfg.download)
    train = _limit(data["train"], cfg.limit_train)
    val = _limit(data["val"], cfg.limit_eval)
    test = _limit(data["test"], cfg.limit_eval)
    task = info.task
    if len(train.images) < 2:
        raise ValueError(f"dataset {cfg.dataset!r}: need at least 2 training images, got {len(train.images)}")

    model = build(cfg.model, info.in_channels, info.n_outputs, cfg.device)
    optimizer = make_optimizer(cfg, model.parameters())
    loader = make_loader(train, cfg)
    spe = len(loader)
    scheduler = make_scheduler(cfg, optimizer, spe)
    state = _fresh_state()
    if resume:
        ck = load_checkpoint(str(last_path), model=model, optimizer=optimizer, scheduler=scheduler)
        state = ck["extra"]["train_state"]
        tr.set_rng_state(ck["extra"]["rng"])
        log(f"resuming {last_path} at epoch {state['epoch'] + 1}, step {state['step']}")
    loader.load_state_dict({"seed": cfg.seed, "epoch": state["epoch"], "batch": state["step"]})
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    log(f"{cfg.dataset} ({task}, {info.in_channels}ch, {info.size}px): train {len(train.images)} / val "
        f"{len(val.images)} / test {len(test.images)} | {cfg.model} ({n_params:,} parameters) | "
        f"{cfg.optimizer} lr {cfg.lr} batch {cfg.batch_size} {cfg.scheduler} | {cfg.epochs} epochs | "
        f"augment {cfg.augment} | seed {cfg.seed} | out {out}")

    def save_last(epoch_idx: int) -> None:
        _save(last_path, model, optimizer, scheduler, cfg, info, epoch_idx, state)

    with _SigintGuard() as guard:
        for epoch in range(state["epoch"], cfg.epochs):
            model.train()
            part = state["partial"]
            bar = ProgressBar(spe, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress, initial=state["step"])
            t_epoch = t_prev = time.perf_counter()
            lr0 = current_lr(optimizer)
            stop = False
            try:
                for x, y in loader:
                    logits = model(x)
                    loss = loss_fn(task, logits, y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    # step time includes waiting for the loader (augmentation runs in its thread)
                    now = time.perf_counter()
                    dt, t_prev = now - t_prev, now
                    lv = float(loss.item())
                    step = state["step"] + 1
                    if not math.isfinite(lv):
                        raise FloatingPointError(f"training loss became {lv} at epoch {epoch + 1}, step "
                                                 f"{step}; try a lower --lr (now {cfg.lr})")
                    part["loss_sum"] += lv * len(x)
                    part["correct"] += _correct(task, logits.numpy(), y)
                    part["seen"] += len(x)
                    part["seconds"] += dt
                    state["step"] = step
                    state["train_seconds"] += dt
                    state["train_images"] += len(x)
                    bar.update(loss=f"{part['loss_sum'] / part['seen']:.4f}",
                               acc=f"{part['correct'] / part['seen']:.3f}",
                               img_s=f"{part['seen'] / max(part['seconds'], 1e-9):.0f}")
                    for cb in callbacks:
                        stop = bool(cb("step", {"epoch": epoch, "step": step, "loss": lv})) or stop
                    if (guard.stop or stop) and step < spe:
                        save_last(epoch)
                        raise TrainingInterrupted(str(last_path), str(out), epoch, step)
            finally:
                bar.close()
            # ---- end of epoch: validate, record, checkpoint
            vm = evaluate(model, val.images, val.labels, task, cfg.eval_batch_size, cfg.device)
            row = {"epoch": epoch + 1, "lr": lr0,
                   "train_loss": part["loss_sum"] / max(1, part["seen"]),
                   "train_acc": part["correct"] / max(1, part["seen"]),
                   "val_loss": vm["loss"], "val_auc": vm["auc"], "val_acc": vm["acc"],
                   "epoch_seconds": time.perf_counter() - t_epoch,
                   "images_per_second": part["seen"] / max(part["seconds"], 1e-9)}
            state["history"].append(json_safe(row))
            state["epoch"], state["step"] = epoch + 1, 0
            state["partial"] = {"loss_sum": 0.0, "correct": 0.0, "seen": 0, "seconds": 0.0}
            finite = math.isfinite(vm["auc"])
            improved = state["best_auc"] is None or (finite and vm["auc"] > state["best_auc"])
            if improved:
                state["best_auc"] = vm["auc"] if math.isfinite(vm["auc"]) else None
                state["best_epoch"] = epoch + 1
                _save(best_path, model, optimizer, scheduler, cfg, info, epoch + 1, state)
            save_last(epoch + 1)
            write_history_csv(out / "history.csv", state["history"])
            log(f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.3f} | val loss {vm['loss']:.4f} AUC {vm['auc']:.4f} ACC {vm['acc']:.3f}"
                f"{' *best*' if improved else ''} | {row['images_per_second']:.0f} img/s")
            for cb in callbacks:
                stop = bool(cb("epoch", {"epoch": epoch, "row": row})) or stop
            if (guard.stop or stop) and epoch + 1 < cfg.epochs:
                raise TrainingInterrupted(str(last_path), str(out), epoch + 1, 0)

    # ---- test the best checkpoint once
    ck = load_checkpoint(str(best_path), model=model)
    tm, probs = evaluate(model, test.images, test.labels, task, cfg.eval_batch_size, cfg.device,
                         return_probs=True)
    state_hist = state["history"]
    result = {f"test_{k}": v for k, v in tm.items() if k not in ("confusion_matrix", "per_class_auc",
                                                                  "per_label_auc")}
    result.update({
        "test_confusion_matrix": tm.get("confusion_matrix"),
        "test_per_class_auc": tm.get("per_class_auc") or tm.get("per_label_auc"),
        "best_epoch": state["best_epoch"], "best_val_auc": state["best_auc"],
        "best_val_acc": next((r["val_acc"] for r in state_hist if r["epoch"] == state["best_epoch"]), None),
        "epochs": cfg.epochs, "train_seconds": state["train_seconds"],
        "wall_seconds": float(sum(r["epoch_seconds"] for r in state_hist)),
        "images_per_second": state["train_images"] / max(state["train_seconds"], 1e-9),
        "n_train": len(train.images), "n_val": len(val.images), "n_test": len(test.images),
        "task": task, "label_names": info.label_names, "threshold": "argmax / 0.5 (fixed, not tuned)",
        "checkpoint": str(best_path), "checkpoint_epoch": ck.get("epoch"),
        "config": cfg.to_dict(), "version": tr.__version__,
    })
    result = json_safe(result)
    write_json(out / "metrics.json", result)
    np.savez(out / "test_predictions.npz", y_true=test.labels, y_prob=probs)  # small; for later analysis
    if cfg.plots:
        _write_plots(out, state_hist, task, test.labels, probs, tm, info, log)
    log(f"test (best epoch {state['best_epoch']}): AUC {tm['auc']:.4f} ACC {tm['acc']:.4f} "
        f"sensitivity {tm['sensitivity']:.4f} specificity {tm['specificity']:.4f} | "
        f"train {state['train_seconds']:.0f}s, {result['images_per_second']:.0f} img/s | "
        f"{out / 'metrics.json'}")
    return result


def _write_plots(out: Path, history: list, task: str, labels, probs, tm: dict, info: DatasetInfo,
                 log) -> None:
    from . import plots

    if not plots.available():
        log(f"plots skipped: {plots.MISSING_MESSAGE}")
        return
    plots.plot_history(history, out / "curves.png")
    plots.plot_roc(task, labels, probs, out / "roc.png", label_names=info.label_names)
    if tm.get("confusion_matrix") is not None:
        plots.plot_confusion_matrix(np.asarray(tm["confusion_matrix"]), out / "confusion_matrix.png",
                                    label_names=info.label_names)


def load_trained(path: str | os.PathLike, device: str = "cpu"):
    """Rebuild the model stored in a training checkpoint -> ``(model in eval mode, meta)``.

    ``meta`` holds ``config`` (a :class:`TrainConfig`), ``task``, ``label_names``, ``in_channels``,
    ``num_classes``, ``size`` and ``epoch``.

        >>> model, meta = load_trained("runs/demo/best.safetensors")
        >>> meta["label_names"]
        ['normal', 'pneumonia']
    """
    from .checkpoint import load_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / BEST_NAME if (path / BEST_NAME).is_file() else path / LAST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    head = load_checkpoint(str(path))
    extra = head.get("extra") or {}
    if not head.get("config") or "num_classes" not in extra:
        raise ValueError(f"{path} is not a tinygrad-rad classification checkpoint (no training config)")
    cfg = TrainConfig.from_dict(head["config"])
    model = build(cfg.model, int(extra["in_channels"]), int(extra["num_classes"]), device)
    load_checkpoint(str(path), model=model)
    model.eval()
    meta = {"config": cfg, "task": extra["task"], "label_names": list(extra["label_names"]),
            "in_channels": int(extra["in_channels"]), "num_classes": int(extra["num_classes"]),
            "size": int(cfg.size), "epoch": head.get("epoch"), "path": str(path)}
    return model, meta
