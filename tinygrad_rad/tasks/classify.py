"""Image classification (MedMNIST 2D) as a task on the shared loop: :func:`fit` (a whole run),
:func:`evaluate`, :func:`predict`, :func:`load_trained`.

    >>> from tinygrad_rad.tasks.classify import TrainConfig, fit
    >>> result = fit(TrainConfig(dataset="pneumoniamnist", epochs=2, out="runs/try"))
    >>> result["test_auc"], result["test_acc"], result["best_epoch"]

A run writes into ``config.out`` what :mod:`tinygrad_rad.tasks.loop` writes for every task
(``last.safetensors``, ``best.safetensors`` of the best validation AUC, ``history.csv``, ``metrics.json``
with the test metrics of the best checkpoint, ``curves.png``) plus ``test_predictions.npz``, ``roc.png``
and ``confusion_matrix.png``. ``fit(config, resume=True)`` continues an interrupted run to exactly the
result an uninterrupted run would have given.

Loss and metrics follow the MedMNIST conventions: binary tasks use a 2-class softmax cross-entropy (AUC on
the positive-class probability, ACC at argmax), multi-class tasks cross-entropy (macro one-vs-rest AUC),
multi-label tasks BCE-with-logits (macro AUC, ACC at 0.5 averaged over labels). Inputs are scaled to
[-1, 1] (mean 0.5, std 0.5). The threshold stays at 0.5 / argmax: nothing is tuned on the test split.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tinygrad_rad as tr

from .. import models, optim, plots
from ..autograd import no_grad
from ..checkpoint import config_from_checkpoint, load_checkpoint, read_checkpoint_info
from ..data import DataLoader, load_medmnist
from ..data.io import read_image
from ..data.transforms import RandomAffine, RandomHorizontalFlip, resize
from ..explain import find_target_layer, grad_cam
from ..metrics import classification_report
from ..nn import functional as F
from ..optim.swa_utils import update_bn
from ..tensor import Tensor
from ..utils import ConfigDictMixin, default_data_dir, json_safe
from .loop import Task, TrainingInterrupted, resolve_checkpoint, train
from .recipe import (
    FLIP_DATASETS,
    balanced_weights,
    check_recipe,
    make_ema,
    shift_images,
    stratified_subset,
    tta_options,
    tta_views,
    uses_hflip,
)

__all__ = ["TrainConfig", "ClassifyTask", "fit", "evaluate", "predict", "predict_logits", "probabilities",
           "preprocess", "load_dataset", "load_trained", "load_image_for_model", "lr_factor",
           "evaluate_checkpoint", "predict_files", "explain_checkpoint",
           "TrainingInterrupted", "DEFAULT_EPOCHS", "make_ema", "balanced_weights", "stratified_subset",
           "uses_hflip", "check_recipe", "tta_views", "tta_options", "shift_images", "FLIP_DATASETS"]

# The default recipe (2-core CPU, <= 15 minutes of training), chosen on validation splits only
# (benchmarks/recipe_search.py; benchmarks/NOTES.md section 8): SmallCNN, Adam 1e-3, batch 128, cosine
# schedule, random affine augmentation whose uncovered pixels repeat the edge (padding_mode "border": a
# black fill is an artifact that clean images never show, and batch norm learns its statistics), left-right
# flips only for FLIP_DATASETS, and batch-norm statistics recomputed on 2,048 clean training images before
# every validation (precise_bn: the running averages describe augmented images of earlier weights), 30
# epochs (20 did as well on PneumoniaMNIST's validation split, a little worse on the small-data one).
DEFAULT_EPOCHS = 30


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
    padding_mode: str = "border"  # what the affine augmentation fills uncovered pixels with: zeros / border
    hflip: str = "auto"  # random left-right flips: "auto" (only FLIP_DATASETS), "yes", "no"
    label_smoothing: float = 0.0
    class_weight: str = "none"  # "balanced": cross-entropy weights n / (K n_k) from the training labels
    mixup: float = 0.0  # Beta(a, a) mixing of image pairs (0: off)
    ema_epochs: float = 0.0  # time constant (epochs) of the weight average that is validated (0: off)
    precise_bn: int = 2048  # batch-norm statistics recomputed on this many clean training images (0: off)
    tta: bool = False  # test-time augmentation in validation, test, evaluate and predict (tta_views)
    train_subset: int | None = None  # a stratified random subset of the training split (subset_seed)
    subset_seed: int = 0
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

    # NOTE: a config stored before a field existed means that field's behaviour of the time, not today's
    # default (a run of the earlier recipe resumes as it started)
    LEGACY = {"padding_mode": "zeros", "precise_bn": 0}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        cfg = super().from_dict({**cls.LEGACY, **d})
        cfg.scale = tuple(cfg.scale)
        return cfg


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


def loss_fn(task: str, logits: Tensor, labels, label_smoothing: float = 0.0, weight=None) -> Tensor:
    """Cross-entropy for binary/multi-class (labels (N, 1) class indices; class ``weight`` (K,) optional),
    BCE-with-logits for multi-label (targets ``y (1 - e) + e / 2`` when ``label_smoothing`` e > 0)."""
    labels = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if is_multilabel(task):
        y = labels.astype(np.float32)
        if label_smoothing:
            y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
        target = Tensor(y.astype(logits.dtype), device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, target)
    w = None if weight is None else Tensor(np.asarray(weight, dtype=logits.dtype), device=logits.device)
    return F.cross_entropy(logits, Tensor(labels.reshape(-1).astype(np.int64), device=logits.device),
                           weight=w, label_smoothing=float(label_smoothing))


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
        self.split, self.augment = split, bool(augment)
        c = cfg or TrainConfig()
        # torchvision-style RandomAffine: rotation, shift (fraction of the size), zoom; left-right flips only
        # for the datasets where the mirror image is plausible (uses_hflip)
        self.affine = RandomAffine(c.rotation, translate=(c.translate, c.translate), scale=tuple(c.scale),
                                   padding_mode=c.padding_mode)
        self.flip = RandomHorizontalFlip() if uses_hflip(c) else None

    def __len__(self) -> int:
        return int(len(self.split.images))

    def get_batch(self, indices, rng: np.random.Generator | None = None):
        idx = np.sort(np.asarray(indices, dtype=np.int64))
        x = preprocess(self.split.images[idx])
        if self.augment:
            rng = rng if rng is not None else np.random.default_rng()
            # augment in [0, 1] pixel space so that the zero fill is black, then renormalise
            x = (self.affine(x * 0.5 + 0.5, rng=rng) - 0.5) / 0.5
            if self.flip is not None:
                x = self.flip(x, rng=rng)
        return np.ascontiguousarray(x, dtype=np.float32), self.split.labels[idx]


def steps_per_epoch(n: int, batch_size: int) -> int:
    # NOTE: a final batch of one image is dropped (batch norm needs > 1 value per channel)
    full, rem = divmod(n, batch_size)
    return full + (1 if rem > 1 else 0)


def make_loader(split: Split, cfg: TrainConfig):
    """The seeded, shuffled, augmenting, prefetching training loader (resumable via ``state_dict``)."""
    n = len(split.images)
    return DataLoader(ClassificationSet(split, cfg, augment=cfg.augment), batch_size=cfg.batch_size,
                      shuffle=True, drop_last=(n % cfg.batch_size == 1), seed=cfg.seed, prefetch=2,
                      device=cfg.device)


# ------------------------------------------------------------------------- model / optimisation
def build(name: str, in_channels: int, num_classes: int, device: str = "cpu"):
    """``tinygrad_rad.models.build_model`` moved to ``device``."""
    model = models.build_model(name, in_channels=in_channels, num_classes=num_classes)
    if device != "cpu" and hasattr(model, "to"):
        model = model.to(device)
    return model


def make_optimizer(cfg: TrainConfig, params):
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
    return optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_ep))


# ------------------------------------------------------------------------------- eval / predict
def predict_logits(model, images: np.ndarray, batch_size: int = 256, device: str = "cpu", tta: bool = False,
                   flip: bool = False, padding_mode: str = "zeros") -> np.ndarray:
    """Model outputs (N, K) for uint8 images (N, H, W[, C]) in eval mode, without a graph; with ``tta``
    the mean over the views of :func:`tta_views` (``flip``: the left-right mirror among them)."""
    was_training = getattr(model, "training", False)
    model.eval()
    outs = []
    try:
        with no_grad():
            for i in range(0, len(images), batch_size):
                chunk = images[i:i + batch_size]
                views = tta_views(chunk, flip, padding_mode) if tta else [chunk]
                out = [model(Tensor(preprocess(v), device=device)).numpy().astype(np.float64) for v in views]
                outs.append(sum(out) / len(views))
    finally:
        if was_training:
            model.train()
    if not outs:
        return np.zeros((0, 0))
    return np.concatenate(outs)


def predict(model, images: np.ndarray, task: str, batch_size: int = 256, device: str = "cpu",
            tta: bool = False, flip: bool = False, padding_mode: str = "zeros") -> np.ndarray:
    """Class probabilities (N, K) for uint8 images: softmax, or per-label sigmoid for multi-label
    (of the mean logits over :func:`tta_views` with ``tta``).

        >>> p = predict(model, test.images[:4], "binary-class")   # p[:, 1] = P(pneumonia)
    """
    return probabilities(task, predict_logits(model, images, batch_size, device, tta, flip, padding_mode))


def evaluate(model, images: np.ndarray, labels: np.ndarray, task: str, batch_size: int = 256,
             device: str = "cpu", return_probs: bool = False, tta: bool = False, flip: bool = False,
             padding_mode: str = "zeros"):
    """Loss + :func:`tinygrad_rad.metrics.classification_report` of ``model`` on a labelled set (eval
    mode, no graph; ``tta``: of the mean logits over :func:`tta_views`).

        >>> evaluate(model, test.images, test.labels, "binary-class")["auc"]
    """
    logits = predict_logits(model, images, batch_size, device, tta, flip, padding_mode)
    labels = np.asarray(labels).astype(np.int64)
    if labels.ndim == 1:
        labels = labels[:, None]
    with no_grad():
        loss = float(loss_fn(task, Tensor(logits.astype(np.float32)), labels).item())
    probs = probabilities(task, logits)
    res = classification_report(task, labels, probs)
    res["loss"] = loss
    return (res, probs) if return_probs else res


# ------------------------------------------------------------------------------------------ task
HISTORY_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_auc", "val_acc", "epoch_seconds",
                  "images_per_second"]


class ClassifyTask(Task):
    """MedMNIST classification on :func:`tinygrad_rad.tasks.loop.train`; best checkpoint by val AUC."""

    name = "classify"
    monitor = "auc"
    history_fields = HISTORY_FIELDS
    # evaluate(model, images, labels, task, batch_size, device, return_probs): the 3-D task swaps in its own
    evaluate_fn = staticmethod(evaluate)
    preprocess_fn = staticmethod(preprocess)  # uint8 images -> the model's float input (clean_batches)
    class_weight = None  # (K,) cross-entropy class weights, set by setup when the recipe asks
    unit = "images"  # what the messages call the samples

    def load_splits(self) -> None:
        """``info``, ``train_split``, ``val``, ``test_split`` (limited as configured), checked non-empty."""
        cfg = self.config
        check_recipe(cfg)
        data, self.info = load_dataset(cfg.dataset, cfg.size, cfg.data_dir or default_data_dir(),
                                       cfg.download)
        self.train_split = _limit(stratified_subset(data["train"], cfg.train_subset, cfg.subset_seed),
                                  cfg.limit_train)
        self.val = _limit(data["val"], cfg.limit_eval)
        self.test_split = _limit(data["test"], cfg.limit_eval)
        for name, split in (("val", self.val), ("test", self.test_split)):  # NOTE: before any training
            if len(split.images) == 0:
                raise ValueError(f"dataset {cfg.dataset!r}: the {name} split is empty")
        if len(self.train_split.images) < 2:
            raise ValueError(f"dataset {cfg.dataset!r}: need at least 2 training {self.unit}, got "
                             f"{len(self.train_split.images)}")

    def setup(self, log) -> None:
        cfg = self.config
        self.load_splits()
        self.model = build(cfg.model, self.info.in_channels, self.info.n_outputs, cfg.device)
        self.optimizer = make_optimizer(cfg, self.model.parameters())
        self.loader = make_loader(self.train_split, cfg)
        self.scheduler = make_scheduler(cfg, self.optimizer, len(self.loader))
        self.setup_recipe()

    def setup_recipe(self) -> None:
        """The recipe's optional state, once model and loader exist: the weight average and class weights."""
        cfg = self.config
        self.ema = make_ema(cfg, self.model, len(self.loader))
        self.class_weight = (balanced_weights(self.info.task, self.train_split.labels, self.info.n_outputs)
                             if cfg.class_weight == "balanced" else None)

    def describe(self) -> str:
        cfg, info = self.config, self.info
        n_params = sum(int(np.prod(p.shape)) for p in self.model.parameters())
        return (f"{cfg.dataset} ({info.task}, {info.in_channels}ch, {info.size}px): train "
                f"{len(self.train_split.images)} / val {len(self.val.images)} / test "
                f"{len(self.test_split.images)} | {cfg.model} ({n_params:,} parameters) | {cfg.optimizer} lr "
                f"{cfg.lr} batch {cfg.batch_size} {cfg.scheduler} | {cfg.epochs} epochs | augment "
                f"{cfg.augment}{self.recipe_notes()} | seed {cfg.seed} | out {cfg.out}")

    def recipe_notes(self) -> str:
        """The recipe's optional pieces that are on, for ``describe`` (e.g. ", precise BN 2048")."""
        cfg, notes = self.config, []
        if getattr(cfg, "augment", False) and getattr(cfg, "padding_mode", None):
            notes.append(f"{cfg.padding_mode} padding" + (", left-right flips" if uses_hflip(cfg) else ""))
        for name, label in (("precise_bn", "precise BN"), ("ema_epochs", "EMA epochs"),
                            ("label_smoothing", "label smoothing"), ("mixup", "mixup")):
            if getattr(cfg, name, 0):
                notes.append(f"{label} {getattr(cfg, name)}")
        if getattr(cfg, "class_weight", "none") != "none":
            notes.append(f"{cfg.class_weight} class weights")
        if getattr(cfg, "tta", False):
            notes.append("TTA")
        if getattr(cfg, "train_subset", None):
            notes.append(f"train subset {cfg.train_subset} (seed {cfg.subset_seed})")
        return " (" + ", ".join(notes) + ")" if notes else ""

    def train_step(self, batch):
        x, y = batch
        cfg, task = self.config, self.info.task
        if cfg.mixup > 0:  # mix image pairs; the loss mixes the two labels' losses with the same weight
            rng = np.random.default_rng((cfg.seed, 7, self.state["epoch"], self.state["step"]))
            lam = float(rng.beta(cfg.mixup, cfg.mixup))
            perm = rng.permutation(len(x))
            xd = x.numpy()
            x = Tensor(lam * xd + (1.0 - lam) * xd[perm], device=x.device)
            logits = self.model(x)
            loss = (loss_fn(task, logits, y, cfg.label_smoothing, self.class_weight) * lam
                    + loss_fn(task, logits, np.asarray(y)[perm], cfg.label_smoothing, self.class_weight)
                    * (1.0 - lam))
        else:
            logits = self.model(x)
            loss = loss_fn(task, logits, y, cfg.label_smoothing, self.class_weight)
        return loss, {"n": len(x), "correct": _correct(task, logits.numpy(), y)}

    def progress(self, part: dict) -> dict:
        return {"loss": f"{part['loss_sum'] / part['n']:.4f}", "acc": f"{part['correct'] / part['n']:.3f}",
                "img_s": f"{part['n'] / max(part['seconds'], 1e-9):.0f}"}

    def eval_model(self):
        """The model that is validated and saved as best: the weight average when the recipe keeps one,
        its batch-norm statistics recomputed on clean training images when ``precise_bn``."""
        cfg = self.config
        m = self.ema.module if self.ema is not None else self.model
        if cfg.precise_bn > 0:
            update_bn(self.clean_batches(cfg.precise_bn), m)
        return m

    def clean_batches(self, n: int):
        """``n`` training images without augmentation, the same seeded random draw every epoch (a split may
        be sorted by label), in training-size batches, for ``update_bn``."""
        cfg, images = self.config, self.train_split.images
        n = min(int(n), len(images))
        pick = np.random.default_rng((cfg.seed, 11)).permutation(len(images))[:n]
        step = cfg.batch_size
        for i in range(0, n - 1, step):  # NOTE: a last batch of one image is skipped (batch norm)
            idx = np.sort(pick[i:i + step])
            if len(idx) > 1:
                yield Tensor(self.preprocess_fn(images[idx]), device=cfg.device)

    def validate(self) -> dict:
        cfg = self.config
        return self.evaluate_fn(self.eval_model(), self.val.images, self.val.labels, self.info.task,
                                cfg.eval_batch_size, cfg.device, **self.eval_options())

    def eval_options(self) -> dict:
        """Extra arguments of ``evaluate_fn``: test-time augmentation when the recipe asks for it."""
        return tta_options(self.config)

    def epoch_row(self, epoch, lr, part, val, seconds) -> dict:
        return {"epoch": epoch + 1, "lr": lr, "train_loss": part["loss_sum"] / max(1, part["n"]),
                "train_acc": part["correct"] / max(1, part["n"]), "val_loss": val["loss"],
                "val_auc": val["auc"], "val_acc": val["acc"], "epoch_seconds": seconds,
                "images_per_second": part["n"] / max(part["seconds"], 1e-9)}

    def epoch_message(self, row, improved) -> str:
        return (f"epoch {row['epoch']}/{self.config.epochs}: train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.3f} | val loss {row['val_loss']:.4f} AUC {row['val_auc']:.4f} ACC "
                f"{row['val_acc']:.3f}{' *best*' if improved else ''} | {row['images_per_second']:.0f} img/s")

    def checkpoint_extra(self, val) -> dict:
        info = self.info
        return {"kind": "classification", "task": info.task, "label_names": info.label_names,
                "in_channels": info.in_channels, "num_classes": info.n_outputs}

    def test(self, state, checkpoint, log) -> dict:
        cfg, info, test = self.config, self.info, self.test_split
        out = Path(cfg.out)
        tm, probs = self.evaluate_fn(self.model, test.images, test.labels, info.task, cfg.eval_batch_size,
                                     cfg.device, return_probs=True, **self.eval_options())
        hist = state["history"]
        result = {f"test_{k}": v for k, v in tm.items() if k not in ("confusion_matrix", "per_class_auc",
                                                                      "per_label_auc")}
        result.update({
            "test_confusion_matrix": tm.get("confusion_matrix"),
            "test_per_class_auc": tm.get("per_class_auc") or tm.get("per_label_auc"),
            "best_epoch": state["best_epoch"], "best_val_auc": state["best"],
            "best_val_acc": next((r["val_acc"] for r in hist if r["epoch"] == state["best_epoch"]), None),
            "epochs": cfg.epochs, "train_seconds": state["train_seconds"],
            "wall_seconds": float(sum(r["epoch_seconds"] for r in hist)),
            "images_per_second": state["train_images"] / max(state["train_seconds"], 1e-9),
            "n_train": len(self.train_split.images), "n_val": len(self.val.images),
            "n_test": len(test.images), "task": info.task, "label_names": info.label_names,
            **self.result_extra(),
            "threshold": "argmax / 0.5 (fixed, not tuned)", "tta": bool(getattr(cfg, "tta", False)),
            "checkpoint": checkpoint["path"], "checkpoint_epoch": checkpoint["epoch"],
            "config": cfg.to_dict(), "version": tr.__version__,
        })
        np.savez(out / "test_predictions.npz", y_true=test.labels, y_prob=probs)  # small; for later analysis
        if cfg.plots and plots.available():
            plots.plot_roc(info.task, test.labels, probs, out / "roc.png", label_names=info.label_names)
            if tm.get("confusion_matrix") is not None:
                plots.plot_confusion_matrix(np.asarray(tm["confusion_matrix"]), out / "confusion_matrix.png",
                                            label_names=info.label_names)
        return result

    def result_extra(self) -> dict:
        """Task-specific entries of metrics.json (after ``label_names``)."""
        return {}

    def summary(self, r: dict) -> str:
        return (f"test (best epoch {r['best_epoch']}): AUC {_num(r['test_auc']):.4f} ACC "
                f"{_num(r['test_acc']):.4f} sensitivity {_num(r['test_sensitivity']):.4f} specificity "
                f"{_num(r['test_specificity']):.4f} | train {r['train_seconds']:.0f}s, "
                f"{r['images_per_second']:.0f} img/s | {Path(self.config.out) / 'metrics.json'}")


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def fit(config: TrainConfig, resume: bool = False, callbacks: Iterable[Callable] = (),
        log: Callable[[str], None] | None = None, keep: Iterable[str] = ()) -> dict:
    """Train, keep the best validation-AUC checkpoint, then test it once. Returns the metrics dict.

    ``resume=True`` continues from ``config.out/last.safetensors`` (with the config stored there; see
    :func:`tinygrad_rad.tasks.loop.train` for ``callbacks`` and ``keep``).
    """
    return train(ClassifyTask(config), resume=resume, callbacks=callbacks, log=log, keep=keep)


# ------------------------------------------------------------------------------------ checkpoints
def load_trained(path: str | os.PathLike, device: str = "cpu"):
    """Rebuild the model stored in a training checkpoint -> ``(model in eval mode, meta)``.

    ``meta`` holds ``config`` (a :class:`TrainConfig`), ``task``, ``label_names``, ``in_channels``,
    ``num_classes``, ``size`` and ``epoch``.

        >>> model, meta = load_trained("runs/demo/best.safetensors")
        >>> meta["label_names"]
        ['normal', 'pneumonia']
    """
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    head = read_checkpoint_info(path)
    extra = head.get("extra") or {}
    if not head.get("config") or "num_classes" not in extra:
        raise ValueError(f"{path} is not a tinygrad-rad classification checkpoint (no training config)")
    cfg = config_from_checkpoint(TrainConfig, head["config"], path)
    model = build(cfg.model, int(extra["in_channels"]), int(extra["num_classes"]), device)
    load_checkpoint(str(path), model=model)
    model.eval()
    meta = {"config": cfg, "task": extra["task"], "label_names": list(extra["label_names"]),
            "in_channels": int(extra["in_channels"]), "num_classes": int(extra["num_classes"]),
            "size": int(cfg.size), "epoch": head.get("epoch"), "path": str(path)}
    return model, meta


def load_image_for_model(path, in_channels: int, size: int) -> np.ndarray:
    """Read a PNG/JPEG/DICOM/NIfTI file as a MedMNIST-like uint8 image (size, size[, 3]).

    The image is scaled to [0, 1] (DICOM: its window or min-max), centre-cropped to a square (as
    MedMNIST did) and resized with antialiasing.
    """
    img = np.asarray(read_image(path), dtype=np.float32)  # (C, H, W) in [0, 1]
    if img.shape[0] == 4:
        img = img[:3]
    if img.shape[0] == 3 and in_channels == 1:
        img = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2])[None]
    elif img.shape[0] == 1 and in_channels == 3:
        img = np.repeat(img, 3, axis=0)
    _, h, w = img.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    img = img[:, top:top + s, left:left + s]
    if s != size:
        try:
            from PIL import Image

            how = Image.Resampling.BOX if s > size else Image.Resampling.BILINEAR
            img = np.stack([np.asarray(Image.fromarray(c, mode="F").resize((size, size), how))
                            for c in img.astype(np.float32)])
        except ImportError:
            img = resize(img, (size, size))
    out = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return out[0] if in_channels == 1 else out.transpose(1, 2, 0)


# ------------------------------------------------------------------------- evaluate / predict / explain
def _split_of(meta: dict, dataset: str | None, split: str, data_dir: str | None):
    cfg = meta["config"]
    name = dataset or cfg.dataset
    data, info = load_dataset(name, cfg.size, data_dir or cfg.data_dir or default_data_dir(), cfg.download,
                              splits=(split,))
    return name, data[split], info


def evaluate_checkpoint(checkpoint, dataset: str | None = None, split: str = "test",
                        data_dir: str | None = None, batch_size: int = 256, limit: int | None = None,
                        device: str = "cpu") -> dict:
    """Loss and :func:`tinygrad_rad.metrics.classification_report` of a training checkpoint on a split
    (default: of the dataset it was trained on)."""
    model, meta = load_trained(checkpoint, device)
    name, part, info = _split_of(meta, dataset, split, data_dir)
    if info.task != meta["task"] or info.n_outputs != meta["num_classes"]:
        raise ValueError(f"{name} ({info.task}, {info.n_outputs} outputs) does not match the checkpoint's "
                         f"task ({meta['task']}, {meta['num_classes']} outputs)")
    if limit:
        part = Split(part.images[:limit], part.labels[:limit])
    res = evaluate(model, part.images, part.labels, meta["task"], batch_size, device,
                   **tta_options(meta["config"]))
    return json_safe({**res, "dataset": name, "split": split, "n": len(part.images),
                      "checkpoint": meta["path"], "epoch": meta["epoch"], "version": tr.__version__})


def predict_files(checkpoint, paths: Iterable, device: str = "cpu") -> list[dict]:
    """Class probabilities of image files (PNG, JPEG, DICOM, NIfTI) ->
    ``[{"image", "probabilities": {label: p}, "prediction"}]``."""
    model, meta = load_trained(checkpoint, device)
    names, paths = meta["label_names"], list(paths)
    imgs = np.stack([load_image_for_model(p, meta["in_channels"], meta["size"]) for p in paths])
    probs = predict(model, imgs, meta["task"], device=device, **tta_options(meta["config"]))
    return prediction_rows(paths, probs, names, meta["task"])


def prediction_rows(paths, probs: np.ndarray, names: list, task: str) -> list[dict]:
    """``[{"image", "probabilities": {label: p}, "prediction"}]``: the labels over 0.5 for multi-label
    tasks, else the most probable one (a class without a name is its index)."""
    results = []
    for path, pr in zip(paths, probs):
        cls = {names[j] if j < len(names) else str(j): float(pr[j]) for j in range(len(pr))}
        if is_multilabel(task):
            pred = [k for k, v in cls.items() if v >= 0.5]
        else:
            j = int(pr.argmax())
            pred = names[j] if j < len(names) else str(j)
        results.append({"image": str(path), "probabilities": cls, "prediction": pred})
    return results


def explain_checkpoint(checkpoint, out, dataset: str | None = None, split: str = "test",
                       data_dir: str | None = None, n: int = 16, seed: int = 0,
                       target_class: int | None = None, layer: str | None = None,
                       device: str = "cpu") -> dict:
    """Grad-CAM and gradient saliency of ``n`` images of a split (a seeded random sample): writes
    ``out/explanations.npz`` and, with matplotlib, ``out/gradcam.png``. Returns what it did."""
    model, meta = load_trained(checkpoint, device)
    name, part, _ = _split_of(meta, dataset, split, data_dir)
    n = min(n, len(part.images))
    idx = np.sort(np.random.default_rng(seed).choice(len(part.images), n, replace=False))
    x = preprocess(part.images[idx])
    layer = layer or find_target_layer(model, Tensor(x[:1], device=device))
    cams, sal, logits, target = grad_cam(model, Tensor(x, device=device), target_class, layer)
    probs = probabilities(meta["task"], logits)
    names = meta["label_names"]

    def nm(j):
        return names[j] if j < len(names) else str(j)

    titles = []
    for i in range(n):
        if is_multilabel(meta["task"]):
            truth = ",".join(nm(j) for j in np.flatnonzero(part.labels[idx[i]])) or "none"
        else:
            truth = nm(int(part.labels[idx[i], 0]))
        titles.append(f"true {truth[:14]}\n{nm(int(target[i]))[:14]} p={probs[i, int(target[i])]:.2f}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "explanations.npz", indices=idx, cams=cams.astype(np.float32),
             saliency=sal.astype(np.float32), probs=probs, target=target)
    png = None
    if plots.available():
        png = str(plots.plot_explanations(part.images[idx], cams, sal, out / "gradcam.png", titles=titles))
    return {"layer": layer, "n": n, "dataset": name, "split": split, "npz": str(out / "explanations.npz"),
            "png": png}
