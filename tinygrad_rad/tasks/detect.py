"""CenterNet nodule detection on LIDC-IDRI slices as a task on the shared loop, next to a non-learned
blob baseline: :func:`train_one`, :func:`cross_validate`, :func:`evaluate_fold`, :func:`predict_boxes`.

    >>> from tinygrad_rad.tasks.detect import DetectConfig, cross_validate
    >>> cv = cross_validate(DetectConfig(epochs=30, out="runs/det_cv"))
    >>> cv["pooled"]["model"]["froc_mean"], cv["pooled"]["baseline"]["froc_mean"]

Data: ``lidc_nodules/lidc_nodule_slices_512.npz`` + ``boxes_512.csv`` from the data folder, block-mean
downsampled to ``size`` (256). Folds are by patient (8 patients -> 4 folds of 2), so neighbouring slices
of one nodule never sit on both sides. There is no validation split (too few patients): each fold trains
a fixed number of epochs and the final weights (``model.safetensors``) are tested once. Every result is
reported next to the non-learned blob baseline (:func:`blob_detect`) on the same test slices: FROC
sensitivity at 1/8..8 false positives per slice and its mean, AP at IoU 0.5 and 0.1 (see
:mod:`tinygrad_rad.metrics.detection` for the hit criterion). The CenterNet itself, its training targets
and its decoding live in :mod:`tinygrad_rad.models.detection`.

Measured (default settings, 4 folds x 20 epochs, 2-core CPU shared with other jobs; FROC mean / AP50):
fold 0 (patients 1, 5) 0.248 / 0.187 vs baseline 0.095 / 0.038; fold 1 (2, 6) 0.236 / 0.098 vs 0.058 / 0.008;
fold 2 (3, 7) 0.119 / 0.033 vs 0.152 / 0.062; fold 3 (4, 8) 0.089 / 0.030 vs 0.000 / 0.004; pooled
0.154 / 0.046 vs 0.124 / 0.033. With 40 epochs fold 0 reached 0.343 / 0.235. Small data (18 nodules):
expect a large spread between folds and seeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tinygrad_rad as tr

from ..boxes import local_maxima, nms
from ..data import DataLoader, open_npz
from ..data.detection import (
    DetectionDataset,
    RandomBoxAffine,
    load_lidc_nodules,
    patient_folds,
    resize_images,
)
from ..metrics.detection import detection_report
from ..models.detection import CenterNet, centernet_loss, decode_centernet
from ..optim import Adam
from ..optim.lr_scheduler import LambdaLR
from ..plots import draw_boxes, write_png
from ..utils import ConfigDictMixin, default_data_dir, json_safe, load_run_checkpoint, write_json
from .loop import Task, stderr_log, train
from .segment import cosine, read_inputs

__all__ = [
    "DetectConfig",
    "DetectTask",
    "train_one",
    "cross_validate",
    "evaluate_fold",
    "evaluate_checkpoint",
    "predict_boxes",
    "predict_files",
    "baseline_boxes",
    "blob_detect",
    "gaussian_blur",
    "load_detector",
    "MODEL_NAME",
]

MODEL_NAME = "model.safetensors"


@dataclass
class DetectConfig(ConfigDictMixin):
    """Everything that defines a detection run (stored in checkpoints and metrics files)."""

    data_dir: str | None = None
    size: int = 256
    folds: int = 4
    fold: int | None = 0
    epochs: int = 20
    batch_size: int = 8
    lr: float = 2e-3
    base_channels: int = 8
    depth: int = 3
    stride: int = 2
    crop: int = 128
    augment: bool = True
    seed: int = 0
    top_k: int = 20
    score_threshold: float = 0.01
    nms_iou: float = 0.3
    device: str = "cpu"
    out: str = "runs/detect"
    limit_train: int | None = None
    limit_test: int | None = None
    num_threads: int | None = None
    draw: int = 6
    progress: bool = True
    plots: bool = True


# ------------------------------------------------------------------------------------------ model
def build_model(cfg: DetectConfig):
    return CenterNet(in_channels=1, base_channels=cfg.base_channels, depth=cfg.depth, stride=cfg.stride).to(
        cfg.device
    )


def predict_boxes(model, images: np.ndarray, cfg: DetectConfig, batch_size: int = 8):
    """Per image (boxes (K, 4), scores (K,)) from a CenterNet in eval mode, decoded in NumPy."""
    model.eval()
    boxes, scores = [], []
    with tr.no_grad():
        for s in range(0, len(images), batch_size):
            x = tr.Tensor(
                np.ascontiguousarray(images[s : s + batch_size], dtype=np.float32), device=cfg.device
            )
            out = {k: v.numpy() for k, v in model(x).items()}
            for k in range(x.shape[0]):
                b, sc = decode_centernet(
                    out["heat"][k],
                    out["size"][k],
                    out["offset"][k],
                    cfg.stride,
                    top_k=cfg.top_k,
                    score_threshold=cfg.score_threshold,
                    nms_iou=cfg.nms_iou,
                )
                boxes.append(b)
                scores.append(sc)
    return boxes, scores


def baseline_boxes(images: np.ndarray, top_k: int = 20):
    """The blob baseline's (boxes, scores) lists for images (N, 1, H, W)."""
    res = [blob_detect(im[0], top_k=top_k) for im in images]
    return [r[0] for r in res], [r[1] for r in res]


def load_data(cfg: DetectConfig) -> dict:
    base = cfg.data_dir or default_data_dir()
    if base is None:
        raise FileNotFoundError("detect: no data folder (give --data-dir or set TINYGRAD_RAD_DATA)")
    return load_lidc_nodules(base, cfg.size)


def load_detector(checkpoint, device: str = "cpu"):
    """(CenterNet in eval mode, DetectConfig) from a checkpoint written by ``detect train``."""
    return load_run_checkpoint(checkpoint, "detect", "detection", DetectConfig, build_model, device)


def fmt_report(r: dict) -> str:
    s = r["froc_sensitivity"]
    return (
        f"FROC mean {r['froc_mean']:.3f} (sens@1/8..8: "
        + " ".join(f"{v:.2f}" for v in s.values())
        + f") AP50 {r['ap50']:.3f} AP10 {r['ap10']:.3f}"
    )


def evaluate_fold(
    model, cfg: DetectConfig, data: dict, test_idx: np.ndarray, out: Path | None = None, baseline: bool = True
) -> tuple[dict, dict]:
    """Model (and blob baseline) metrics on ``test_idx``; draws ``cfg.draw`` PNGs into ``out/drawings``.
    Returns (metrics, {"model": (boxes, scores), "baseline": ..., "gt": true boxes})."""
    images = data["images"][test_idx]
    gt = [data["boxes"][i] for i in test_idx]
    pb, ps = predict_boxes(model, images, cfg)
    res = {
        "model": detection_report(pb, ps, gt),
        "n_test": len(test_idx),
        "test_patients": sorted({int(p) for p in data["patient"][test_idx]}),
    }
    preds = {"model": (pb, ps), "gt": gt}
    if baseline:
        bb, bs = baseline_boxes(images, cfg.top_k)
        res["baseline"] = detection_report(bb, bs, gt)
        preds["baseline"] = (bb, bs)
    if out is not None and cfg.draw:
        d = out / "drawings"
        d.mkdir(parents=True, exist_ok=True)
        for k in np.linspace(0, len(test_idx) - 1, min(cfg.draw, len(test_idx))).astype(int):
            name = str(data["ids"][test_idx[k]])
            write_png(d / f"{name}.png", draw_boxes(images[k, 0], (pb[k], ps[k]), gt[k]))
    return res, preds


def split_fold(cfg: DetectConfig, data: dict) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) slice indices of ``cfg.fold`` (None: every slice trains, none tests)."""
    n = len(data["images"])
    if cfg.fold is None:
        train_idx, test_idx = np.arange(n), np.zeros(0, dtype=np.int64)
    else:
        folds = patient_folds(data["patient"], cfg.folds)
        if not 0 <= cfg.fold < len(folds):
            raise ValueError(f"detect: --fold must be in [0, {len(folds) - 1}], got {cfg.fold}")
        train_idx, test_idx = folds[cfg.fold]
    if cfg.limit_train:
        train_idx = train_idx[:: max(1, len(train_idx) // cfg.limit_train)][: cfg.limit_train]
    if cfg.limit_test:
        test_idx = test_idx[: cfg.limit_test]
    return train_idx, test_idx


# ------------------------------------------------------------------------------------------ task
class DetectTask(Task):
    """CenterNet on :func:`tinygrad_rad.tasks.loop.train`: no validation split, so the final weights
    (``model.safetensors``) are tested, next to the blob baseline."""

    name = "detect"
    monitor = None
    last_name = MODEL_NAME

    def __init__(self, config: DetectConfig, data: dict | None = None):
        super().__init__(config)
        self.data = data
        self.preds: dict = {}

    def setup(self, log) -> None:
        cfg = self.config
        self.data = self.data if self.data is not None else load_data(cfg)
        self.train_idx, self.test_idx = split_fold(cfg, self.data)
        if len(self.train_idx) == 0:
            raise ValueError(f"detect: fold {cfg.fold} leaves no training slices")
        self.patients = sorted({int(p) for p in self.data["patient"][self.train_idx]})
        self.model = build_model(cfg)
        images, boxes = self.data["images"][self.train_idx], [self.data["boxes"][i] for i in self.train_idx]
        ds = DetectionDataset(images, boxes, stride=cfg.stride,
                              augment=RandomBoxAffine() if cfg.augment else None, crop=cfg.crop)
        self.loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True,
                                 drop_last=len(ds) > cfg.batch_size, seed=cfg.seed)
        self.optimizer = Adam(self.model.parameters(), lr=cfg.lr)
        self.scheduler = LambdaLR(self.optimizer, cosine(len(self.loader) * cfg.epochs))

    def describe(self) -> str:
        cfg = self.config
        return (f"detect fold {cfg.fold}: train {len(self.train_idx)} slices (patients {self.patients}) / "
                f"test {len(self.test_idx)} slices | CenterNet base {cfg.base_channels} depth {cfg.depth} "
                f"stride {cfg.stride} | {cfg.size}px, crops {cfg.crop} | {cfg.epochs} epochs batch "
                f"{cfg.batch_size} Adam lr {cfg.lr}")

    def train_step(self, batch):
        x, heat, size, off, mask = batch
        if self.config.device != "cpu":
            x = x.to(self.config.device)
        loss, parts = centernet_loss(self.model(x), heat, size, off, mask)
        return loss, {"n": x.shape[0], "batches": 1, **parts}

    def epoch_row(self, epoch, lr, part, val, seconds) -> dict:
        b = max(part.get("batches", 0), 1)
        return {"epoch": epoch + 1, "lr": lr, "loss": part["loss_sum"] / max(part["n"], 1),
                **{k: part.get(k, 0.0) / b for k in ("heat", "size", "offset")}, "epoch_seconds": seconds}

    def epoch_message(self, row, improved) -> str:
        return (f"epoch {row['epoch']}/{self.config.epochs}: loss {row['loss']:.4f} (heat {row['heat']:.3f} "
                f"size {row['size']:.3f} offset {row['offset']:.3f}) | {row['epoch_seconds']:.1f}s")

    def checkpoint_extra(self, val) -> dict:
        return {"kind": "detection", "train_patients": self.patients,
                "train_seconds": self.state["train_seconds"]}

    def test(self, state, checkpoint, log) -> dict:
        cfg = self.config
        res = {"fold": cfg.fold, "train_patients": self.patients, "train_seconds": state["train_seconds"],
               "history": state["history"]}
        if len(self.test_idx):
            ev, self.preds = evaluate_fold(self.model, cfg, self.data, self.test_idx, Path(cfg.out))
            res.update(ev)
            log(f"fold {cfg.fold} test patients {ev['test_patients']}: model {fmt_report(ev['model'])}")
            log(f"fold {cfg.fold} test patients {ev['test_patients']}: blob baseline "
                f"{fmt_report(ev['baseline'])}")
        res.update({"config": cfg.to_dict(), "checkpoint": checkpoint["path"], "version": tr.__version__})
        return res


def train_one(cfg: DetectConfig, log: Callable[[str], None] | None = None, resume: bool = False,
              data: dict | None = None, keep=()) -> dict:
    """Train on all folds but ``cfg.fold`` (or on everything when ``cfg.fold`` is None) and test on it;
    writes ``model.safetensors``, ``history.csv``, ``metrics.json`` and drawings into ``cfg.out``."""
    return train(DetectTask(cfg, data), resume=resume, log=log, keep=keep)


def cross_validate(cfg: DetectConfig, log: Callable[[str], None] | None = None) -> dict:
    """Patient-wise ``cfg.folds``-fold cross-validation (one run per fold in ``out/fold<k>``): per-fold
    and pooled FROC / AP, model vs baseline, in ``out/cv_metrics.json``."""
    log = log or stderr_log
    out = Path(cfg.out)
    data = load_data(cfg)
    folds, pooled = [], {"model": ([], [], []), "baseline": ([], [], [])}
    t0 = time.perf_counter()
    for k in range(cfg.folds):
        task = DetectTask(dataclasses.replace(cfg, fold=k, out=str(out / f"fold{k}")), data)
        r = train(task, log=log)
        for name in ("model", "baseline"):
            b, s = task.preds[name]
            pooled[name][0].extend(b)
            pooled[name][1].extend(s)
            pooled[name][2].extend(task.preds["gt"])
        folds.append({k: v for k, v in r.items() if k not in ("config", "version")})
    res = {
        "pooled": {name: detection_report(*v) for name, v in pooled.items()},
        "folds": folds,
        "total_seconds": time.perf_counter() - t0,
        "config": cfg.to_dict(),
        "version": tr.__version__,
    }
    write_json(out / "cv_metrics.json", res)
    log(f"pooled over {cfg.folds} folds: model {fmt_report(res['pooled']['model'])}")
    log(f"pooled over {cfg.folds} folds: blob baseline {fmt_report(res['pooled']['baseline'])}")
    return json_safe(res)


def evaluate_checkpoint(checkpoint, fold: int | None = None, data_dir: str | None = None, device: str = "cpu",
                        out: str | None = None, limit_test: int | None = None,
                        log: Callable[[str], None] | None = None) -> dict:
    """FROC / AP of a checkpoint and of the blob baseline on a patient fold (default: the one held out
    in training); with ``out``, also ``out/metrics.json`` and drawings."""
    log = log or stderr_log
    model, cfg = load_detector(checkpoint, device)
    if data_dir:
        cfg.data_dir = data_dir
    test_fold = cfg.fold if fold is None else fold
    if test_fold is None:
        raise ValueError(
            "detect evaluate: the checkpoint was trained on every patient; give --fold to pick test slices"
        )
    data = load_data(cfg)
    test_idx = patient_folds(data["patient"], cfg.folds)[test_fold][1]
    if limit_test:
        test_idx = test_idx[:limit_test]
    if fold is not None and cfg.fold is not None and fold != cfg.fold:
        log(f"warning: fold {fold} was part of this model's training data (it held out fold {cfg.fold})")
    cfg.draw = cfg.draw if out else 0
    res, _ = evaluate_fold(model, cfg, data, test_idx, Path(out) if out else None)
    res.update({"fold": test_fold, "checkpoint": str(checkpoint)})
    if out:
        write_json(Path(out) / "metrics.json", res)
    return json_safe(res)


def read_images(path: Path) -> list[tuple[str, np.ndarray]]:
    """(name, 2-D image) pairs from an .npz with ``images`` (N, H, W) (and optional ``ids``), or from
    anything :func:`tinygrad_rad.tasks.segment.read_inputs` reads."""
    if path.suffix == ".npz":
        with open_npz(path, what="detect predict: input") as z:
            if "images" not in z:
                raise KeyError(f"detect predict: {path} has no 'images' array (keys {z.files})")
            imgs = z["images"].astype(np.float32)
            ids = [str(i) for i in z["ids"]] if "ids" in z else [f"{k:04d}" for k in range(len(imgs))]
        return list(zip(ids, imgs.reshape((-1,) + imgs.shape[-2:])))
    return read_inputs(path, None)


def predict_files(checkpoint, input, out, max_boxes: int = 5, device: str = "cpu") -> list[dict]:
    """Detect nodules in square images (a multiple of the training size); writes ``<id>_boxes.png`` and
    ``predictions.json`` (boxes in input pixels) into ``out``."""
    model, cfg = load_detector(checkpoint, device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name, im in read_images(Path(input)):
        h, w = im.shape
        if h != w or h % cfg.size:
            raise ValueError(
                f"detect predict: {name} is {h}x{w}; expected a square image of a multiple of {cfg.size}"
            )
        small = resize_images(im[None], cfg.size)[:, None]
        (b,), (s,) = predict_boxes(model, small, cfg, batch_size=1)
        f = h / cfg.size
        write_png(out / f"{name}_boxes.png", draw_boxes(small[0, 0], (b, s), None, max_pred=max_boxes))
        results.append({"id": name, "boxes": (b * f).round(2).tolist(), "scores": s.round(4).tolist()})
    write_json(out / "predictions.json", results)
    return results


# ------------------------------------------------------------------------------------ blob baseline
def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix that blurs one axis with a Gaussian (edges: renormalised, like 'nearest'-ish)."""
    i = np.arange(n)
    g = np.exp(-((i[:, None] - i[None, :]) ** 2) / (2 * sigma * sigma))
    return g / g.sum(1, keepdims=True)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D image as two small matrix products ``G_h @ img @ G_w^T``."""
    a = np.asarray(img, dtype=np.float64)
    return _gauss_matrix(a.shape[0], sigma) @ a @ _gauss_matrix(a.shape[1], sigma).T


def blob_detect(
    img: np.ndarray,
    sigmas=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
    min_intensity: float = 0.1,
    threshold: float = 0.0,
    top_k: int = 50,
    nms_iou: float = 0.3,
):
    """Non-learned baseline: multi-scale Hessian bright-blob detector.

    At each scale the image is Gaussian-blurred and its Hessian eigenvalues l1 <= l2 computed; a bright
    blob has both negative, a bright vessel (tube) only one, so the score ``sigma^2 * max(0, -l2)`` (the
    scale-normalised smaller curvature) keeps blobs and suppresses vessels. Scores are maxed over
    scales; 3x3 local maxima above ``threshold`` whose blurred intensity exceeds ``min_intensity`` become
    boxes of side ``2 sqrt(2) sigma`` centred on the peak. Returns ``(boxes (K, 4), scores (K,))``
    sorted by score (at most ``top_k`` after NMS at ``nms_iou``).
    """
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"blob_detect: expected a 2-D image, got shape {a.shape}")
    resp = np.zeros(a.shape)
    best_sigma = np.full(a.shape, float(sigmas[0]))
    for s in sigmas:
        g = gaussian_blur(a, s)
        gy, gx = np.gradient(g)
        gyy, gyx = np.gradient(gy)
        _, gxx = np.gradient(gx)
        # eigenvalues of [[gxx, gyx], [gyx, gyy]]: mean +- sqrt(((gxx - gyy) / 2)^2 + gyx^2)
        mean, dev = (gxx + gyy) / 2, np.sqrt(((gxx - gyy) / 2) ** 2 + gyx**2)
        score = s * s * np.clip(-(mean + dev), 0, None)
        better = score > resp
        resp[better], best_sigma[better] = score[better], s
    peaks = local_maxima(resp) & (resp > threshold) & (gaussian_blur(a, 1.0) > min_intensity)
    ys, xs = np.nonzero(peaks)
    sc = resp[ys, xs]
    order = np.argsort(-sc, kind="stable")[: top_k * 4]
    ys, xs, sc = ys[order], xs[order], sc[order]
    half = np.sqrt(2) * best_sigma[ys, xs]
    cx, cy = xs + 0.5, ys + 0.5
    boxes = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1).reshape(-1, 4)
    if len(boxes):
        keep = nms(boxes, sc, nms_iou)[:top_k]
        boxes, sc = boxes[keep], sc[keep]
    return boxes, sc
