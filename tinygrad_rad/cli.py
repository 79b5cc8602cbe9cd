"""The ``tinygrad-rad`` command: train, evaluate, predict and explain radiology classifiers.

    $ tinygrad-rad train --out runs/demo                 # the default PneumoniaMNIST recipe
    $ tinygrad-rad train --resume runs/demo              # continue after Ctrl-C
    $ tinygrad-rad evaluate --checkpoint runs/demo/best.safetensors --split test --json test.json
    $ tinygrad-rad predict --checkpoint runs/demo/best.safetensors chest.png scan.dcm
    $ tinygrad-rad explain --checkpoint runs/demo/best.safetensors --n 16 --out runs/demo/explain

``segment`` and ``detect`` are added when their modules (``tinygrad_rad.cli_segment``,
``tinygrad_rad.cli_detect``) are present. ``main(argv)`` returns the exit code (130 after Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__
from . import train as T
from .utils import default_data_dir, json_safe, write_json

EXIT_INTERRUPTED = 130


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s}")
    return v


# --------------------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    d = T.TrainConfig()
    p = sub.add_parser("train", help="train a classifier on a MedMNIST 2D dataset",
                       description="Train a classifier; keeps OUT/best.safetensors (best validation AUC) "
                                   "and OUT/last.safetensors, then tests the best checkpoint once "
                                   "(OUT/metrics.json). With no options: the default PneumoniaMNIST recipe.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default=d.dataset, help="MedMNIST flag, e.g. pneumoniamnist, breastmnist, "
                                                       "dermamnist, chestmnist")
    p.add_argument("--model", default=d.model, help="smallcnn, resnet18, ... (tinygrad_rad.models)")
    p.add_argument("--epochs", type=_positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    p.add_argument("--eval-batch-size", type=_positive_int, default=d.eval_batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default=d.optimizer)
    p.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum (Nesterov)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--scheduler", choices=["cosine", "step", "multistep", "none"], default=d.scheduler)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
                   help="random affine: rotation +-10 deg, shift +-2 px (at 28 px), scale 0.9-1.1; no flips")
    p.add_argument("--size", type=int, default=d.size, choices=[28, 64, 128, 224], help="MedMNIST image size")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="cpu or cuda")
    p.add_argument("--data-dir", default=None,
                   help="folder with the MedMNIST .npz files (default: $TINYGRAD_RAD_DATA, else "
                        "../shared/data when present, else ~/.cache/tinygrad_rad)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading a missing dataset")
    p.add_argument("--out", default=d.out, help="output folder")
    p.add_argument("--resume", metavar="OUT", default=None,
                   help="continue the run in OUT (its last.safetensors, with its stored settings)")
    p.add_argument("--limit-train", type=_positive_int, default=None,
                   help="use only the first N training images")
    p.add_argument("--limit-eval", type=_positive_int, default=None,
                   help="use only the first N validation and test images")
    p.add_argument("--num-threads", type=_positive_int, default=None,
                   help="Numba and BLAS threads (default: all cores; use 1 on a busy machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    if args.resume:
        out = Path(args.resume)
        if out.is_file():
            out = out.parent
        cfg = T.TrainConfig(out=str(out), device=args.device, num_threads=args.num_threads,
                            progress=not args.no_progress, plots=not args.no_plots, data_dir=args.data_dir)
        resume = True
    else:
        cfg = T.TrainConfig(
            dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
            eval_batch_size=args.eval_batch_size, lr=args.lr, optimizer=args.optimizer,
            momentum=args.momentum, weight_decay=args.weight_decay, scheduler=args.scheduler,
            warmup_epochs=args.warmup_epochs,
            augment=args.augment, size=args.size, seed=args.seed, device=args.device,
            data_dir=args.data_dir or default_data_dir(), out=args.out, limit_train=args.limit_train,
            limit_eval=args.limit_eval, num_threads=args.num_threads, plots=not args.no_plots,
            progress=not args.no_progress, download=not args.no_download)
        resume = False
    try:
        res = T.fit(cfg, resume=resume)
    except T.TrainingInterrupted as e:
        print(f"\ninterrupted: saved {e.checkpoint} (epoch {e.epoch + 1}, step {e.step}).\n"
              f"resume with: tinygrad-rad train --resume {e.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(json.dumps({k: res[k] for k in ("test_auc", "test_acc", "test_sensitivity", "test_specificity",
                                          "best_epoch", "train_seconds", "images_per_second")}, indent=2))
    return 0


# ------------------------------------------------------------------------------------ evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics of a checkpoint on a dataset split")
    p.add_argument("--checkpoint", required=True,
                   help="a .safetensors checkpoint written by train (or its folder)")
    p.add_argument("--dataset", default=None, help="default: the dataset the checkpoint was trained on")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batch-size", type=_positive_int, default=256)
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N images")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)


def _data_dir(args, cfg) -> str | None:
    return args.data_dir or cfg.data_dir or default_data_dir()


def cmd_evaluate(args) -> int:
    model, meta = T.load_trained(args.checkpoint, args.device)
    cfg = meta["config"]
    name = args.dataset or cfg.dataset
    data, info = T.load_dataset(name, cfg.size, _data_dir(args, cfg), cfg.download, splits=(args.split,))
    if info.task != meta["task"] or info.n_outputs != meta["num_classes"]:
        raise ValueError(f"{name} ({info.task}, {info.n_outputs} outputs) does not match the checkpoint's "
                         f"task ({meta['task']}, {meta['num_classes']} outputs)")
    split = data[args.split]
    if args.limit:
        split = T.Split(split.images[:args.limit], split.labels[:args.limit])
    res = T.evaluate(model, split.images, split.labels, meta["task"], args.batch_size, args.device)
    res = json_safe({**res, "dataset": name, "split": args.split, "n": len(split.images),
                        "checkpoint": meta["path"], "epoch": meta["epoch"], "version": __version__})
    print(f"{name} {args.split} ({len(split.images)} images), {meta['path']}:")
    for k in ("auc", "acc", "sensitivity", "specificity", "ppv", "npv", "f1", "balanced_accuracy", "loss"):
        v = res.get(k)
        print(f"  {k:<18s} {v:.4f}" if isinstance(v, float) else f"  {k:<18s} {v}")
    if res.get("confusion_matrix") is not None:
        print(f"  confusion matrix (rows true, cols predicted): {res['confusion_matrix']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, res)
        print(f"wrote {args.json}")
    return 0


# ------------------------------------------------------------------------------------- predict
def load_image_for_model(path, in_channels: int, size: int) -> np.ndarray:
    """Read a PNG/JPEG/DICOM/NIfTI file as a MedMNIST-like uint8 image (size, size[, 3]).

    The image is scaled to [0, 1] (DICOM: its window or min-max), centre-cropped to a square (as
    MedMNIST did) and resized with antialiasing.
    """
    from .data.io import read_image

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
            from .data.transforms import resize

            img = resize(img, (size, size))
    out = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    return out[0] if in_channels == 1 else out.transpose(1, 2, 0)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="class probabilities for image files (PNG, JPEG, DICOM, NIfTI)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the predictions as JSON")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    model, meta = T.load_trained(args.checkpoint, args.device)
    names = meta["label_names"]
    imgs = np.stack([load_image_for_model(p, meta["in_channels"], meta["size"]) for p in args.images])
    probs = T.predict(model, imgs, meta["task"], device=args.device)
    multilabel = T.is_multilabel(meta["task"])
    results = []
    for path, pr in zip(args.images, probs):
        cls = {names[j] if j < len(names) else str(j): float(pr[j]) for j in range(len(pr))}
        if multilabel:
            pred = [k for k, v in cls.items() if v >= 0.5]
        else:
            pred = names[int(pr.argmax())] if int(pr.argmax()) < len(names) else str(int(pr.argmax()))
        results.append({"image": str(path), "probabilities": cls, "prediction": pred})
        shown = "  ".join(f"{k} {v:.4f}" for k, v in cls.items())
        print(f"{path}: {shown}  -> {pred}")
    if args.json:
        write_json(args.json, results)
    return 0


# ------------------------------------------------------------------------------------- explain
def _add_explain(sub) -> None:
    p = sub.add_parser("explain", help="Grad-CAM and gradient saliency overlays for test images (PNG grid)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", default=None, help="default: the checkpoint's dataset")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n", type=_positive_int, default=16, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="which images: a seeded random sample of the split")
    p.add_argument("--target-class", type=int, default=None,
                   help="class to explain (default: the predicted one)")
    p.add_argument("--layer", default=None, help="module name for Grad-CAM (default: the last conv block)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="output folder (writes gradcam.png and explanations.npz)")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:
    from . import plots
    from .explain import find_target_layer, grad_cam
    from .tensor import Tensor

    model, meta = T.load_trained(args.checkpoint, args.device)
    cfg = meta["config"]
    name = args.dataset or cfg.dataset
    data, info = T.load_dataset(name, cfg.size, _data_dir(args, cfg), cfg.download, splits=(args.split,))
    split = data[args.split]
    n = min(args.n, len(split.images))
    idx = np.sort(np.random.default_rng(args.seed).choice(len(split.images), n, replace=False))
    x = T.preprocess(split.images[idx])
    layer = args.layer or find_target_layer(model, Tensor(x[:1], device=args.device))
    cams, sal, logits, target = grad_cam(model, Tensor(x, device=args.device), args.target_class, layer)
    probs = T.probabilities(meta["task"], logits)
    names = meta["label_names"]

    def nm(j):
        return names[j] if j < len(names) else str(j)

    titles = []
    for i in range(n):
        if T.is_multilabel(meta["task"]):
            truth = ",".join(nm(j) for j in np.flatnonzero(split.labels[idx[i]])) or "none"
        else:
            truth = nm(int(split.labels[idx[i], 0]))
        titles.append(f"true {truth[:14]}\n{nm(int(target[i]))[:14]} p={probs[i, int(target[i])]:.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "explanations.npz", indices=idx, cams=cams.astype(np.float32),
             saliency=sal.astype(np.float32), probs=probs, target=target)
    print(f"Grad-CAM layer: {layer}; {n} {name} {args.split} images; wrote {out / 'explanations.npz'}")
    if not plots.available():
        print(f"no PNG: {plots.MISSING_MESSAGE}", file=sys.stderr)
        return 0
    png = plots.plot_explanations(split.images[idx], cams, sal, out / "gradcam.png", titles=titles)
    print(f"wrote {png}")
    return 0


# ---------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinygrad-rad", description="Train and inspect radiology CNNs "
                                                                      "with tinygrad_rad.")
    parser.add_argument("--version", action="version", version=f"tinygrad_rad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_train(sub)
    _add_evaluate(sub)
    _add_predict(sub)
    _add_explain(sub)
    for mod in ("cli_segment", "cli_detect"):
        try:
            m = __import__(f"tinygrad_rad.{mod}", fromlist=["register"])
        except ImportError:
            continue
        m.register(sub)
    return parser


def main(argv: list | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # NOTE: registered commands may name their handler `func` or `<command>_func` (segment, detect)
    fn = getattr(args, "func", None) or getattr(args, f"{args.command}_func", None)
    if fn is None:
        parser.error(f"{args.command}: choose a sub-command (see tinygrad-rad {args.command} --help)")
    try:
        return int(fn(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (FileNotFoundError, ValueError, KeyError, ImportError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"tinygrad-rad {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
