"""``tinygrad-rad train|evaluate|predict|explain``: the classification commands (tinygrad_rad.tasks.classify).

    $ tinygrad-rad train --out runs/demo                 # the default PneumoniaMNIST recipe
    $ tinygrad-rad train --resume runs/demo              # continue after Ctrl-C (or: --epochs 30 for longer)
    $ tinygrad-rad evaluate --checkpoint runs/demo/best.safetensors --split test --json test.json
    $ tinygrad-rad predict --checkpoint runs/demo/best.safetensors chest.png scan.dcm
    $ tinygrad-rad explain --checkpoint runs/demo/best.safetensors --n 16 --out runs/demo/explain
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import plots
from ..tasks import classify as C
from ..tasks import classify3d as C3
from ..utils import default_data_dir, write_json
from . import classify3d as cli3d
from .common import (
    CLIError,
    add_data_dir,
    add_device,
    add_distributed,
    add_epochs,
    add_resume,
    add_seed,
    finite_float,
    fit_and_report,
    positive_int,
    resume_keep,
)


# --------------------------------------------------------------------------------------- train
def add_train(sub) -> None:
    d = C.TrainConfig()
    p = sub.add_parser("train", help="train a classifier on a MedMNIST 2D dataset",
                       description="Train a classifier; keeps OUT/best.safetensors (best validation AUC) "
                                   "and OUT/last.safetensors, then tests the best checkpoint once "
                                   "(OUT/metrics.json). With no options: the default PneumoniaMNIST recipe.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", "--data", dest="dataset", default=d.dataset,
                   help="MedMNIST flag, e.g. pneumoniamnist, breastmnist, dermamnist, chestmnist; a 3D flag "
                        "(vesselmnist3d, nodulemnist3d, ...) trains the 3D recipe instead (smallcnn3d, batch "
                        f"32, flips, {C3.DEFAULT_EPOCHS} epochs, --out runs/train3d; given options apply)")
    p.add_argument("--model", default=d.model, help="smallcnn, resnet18, ... (tinygrad_rad.models)")
    add_epochs(p, d.epochs)
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    p.add_argument("--eval-batch-size", type=positive_int, default=d.eval_batch_size)
    p.add_argument("--lr", type=finite_float, default=d.lr)
    p.add_argument("--optimizer", choices=["adam", "adamw", "sgd"], default=d.optimizer)
    p.add_argument("--momentum", type=finite_float, default=d.momentum, help="SGD momentum (Nesterov)")
    p.add_argument("--weight-decay", type=finite_float, default=d.weight_decay)
    p.add_argument("--scheduler", choices=["cosine", "step", "multistep", "none"], default=d.scheduler)
    p.add_argument("--warmup-epochs", type=finite_float, default=d.warmup_epochs)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
                   help="random affine: rotation +-10 deg, shift +-2 px (at 28 px), scale 0.9-1.1 (+ flips, "
                        "see --hflip)")
    p.add_argument("--padding-mode", choices=["zeros", "border"], default=d.padding_mode,
                   help="what the affine augmentation fills uncovered pixels with (border: the nearest "
                        "edge pixel)")
    p.add_argument("--hflip", choices=["auto", "yes", "no"], default=d.hflip,
                   help="random left-right flips when augmenting; auto: only for "
                        f"{', '.join(sorted(C.FLIP_DATASETS))} (never radiographs / CT / ultrasound)")
    p.add_argument("--label-smoothing", type=finite_float, default=d.label_smoothing)
    p.add_argument("--class-weight", choices=["none", "balanced"], default=d.class_weight,
                   help="balanced: weight each class's cross-entropy by n / (K n_k) of the training labels")
    p.add_argument("--mixup", type=finite_float, default=d.mixup, metavar="ALPHA",
                   help="mixup of image pairs with weights ~ Beta(ALPHA, ALPHA); 0: off")
    p.add_argument("--ema-epochs", type=finite_float, default=d.ema_epochs,
                   help="validate / keep an exponential average of the weights with this time constant in "
                        "epochs; 0: off")
    p.add_argument("--precise-bn", type=int, default=d.precise_bn, metavar="N",
                   help="before each validation recompute the batch-norm statistics on N clean training "
                        "images; 0: off")
    p.add_argument("--tta", action=argparse.BooleanOptionalAction, default=d.tta,
                   help="test-time augmentation: mean logits over the image, its four 1-pixel shifts (and "
                        "its mirror where --hflip applies) in validation, test, evaluate and predict")
    p.add_argument("--train-subset", type=positive_int, default=None, metavar="N",
                   help="train on N training images drawn at random, stratified by label (--subset-seed)")
    p.add_argument("--subset-seed", type=int, default=d.subset_seed)
    p.add_argument("--size", type=int, default=d.size, choices=[28, 64, 128, 224], help="MedMNIST image size")
    add_seed(p, d.seed)
    add_device(p)
    add_data_dir(p, "folder with the MedMNIST .npz files (default: $TINYGRAD_RAD_DATA, else "
                    "../shared/data when present, else ~/.cache/tinygrad_rad)")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading a missing dataset")
    p.add_argument("--out", default=d.out, help="output folder")
    add_resume(p)
    add_distributed(p)
    p.add_argument("--limit-train", type=positive_int, default=None,
                   help="use only the first N training images")
    p.add_argument("--limit-eval", type=positive_int, default=None,
                   help="use only the first N validation and test images")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="no PNG plots")
    p.add_argument("--detect-anomaly", action="store_true",
                   help="check every gradient in backward and stop at the first op that makes a nan/inf one "
                        "(autograd.detect_anomaly; slower, for debugging)")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    if cli3d.wants_3d_train(args):
        return cli3d.cmd_train(args)
    if args.resume:
        out = Path(args.resume)
        if out.is_file():
            out = out.parent
        keep = resume_keep(args, out)
        cfg = C.TrainConfig(out=str(out), device=args.device, num_threads=args.num_threads,
                            epochs=args.epochs, progress=not args.no_progress, plots=not args.no_plots,
                            data_dir=args.data_dir)
        resume = True
    else:
        cfg = C.TrainConfig(
            dataset=args.dataset, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
            eval_batch_size=args.eval_batch_size, lr=args.lr, optimizer=args.optimizer,
            momentum=args.momentum, weight_decay=args.weight_decay, scheduler=args.scheduler,
            warmup_epochs=args.warmup_epochs, hflip=args.hflip, label_smoothing=args.label_smoothing,
            class_weight=args.class_weight, tta=args.tta, padding_mode=args.padding_mode,
            mixup=args.mixup, ema_epochs=args.ema_epochs, precise_bn=args.precise_bn,
            train_subset=args.train_subset, subset_seed=args.subset_seed,
            augment=args.augment, size=args.size, seed=args.seed, device=args.device,
            data_dir=args.data_dir or default_data_dir(), out=args.out, limit_train=args.limit_train,
            limit_eval=args.limit_eval, num_threads=args.num_threads, plots=not args.no_plots,
            progress=not args.no_progress, download=not args.no_download)
        keep, resume = (), False
    return fit_and_report(args, C.fit, cfg, resume, keep)


# ------------------------------------------------------------------------------------ evaluate
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="metrics of a checkpoint on a dataset split")
    p.add_argument("--checkpoint", required=True,
                   help="a .safetensors checkpoint written by train (or its folder)")
    p.add_argument("--dataset", "--data", dest="dataset", default=None,
                   help="default: the dataset the checkpoint was trained on")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    add_data_dir(p)
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: 256 (2D), 64 (3D)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    add_device(p)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the metrics as JSON")
    p.add_argument("--out", default=None, help="also write OUT/metrics.json")
    p.set_defaults(func=cmd_evaluate)


def _write(path, obj) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json(path, obj)
    print(f"wrote {path}")


def cmd_evaluate(args) -> int:
    if cli3d.is_3d_checkpoint(args.checkpoint):
        res = C3.evaluate_checkpoint(args.checkpoint, args.dataset, args.split, args.data_dir,
                                     args.batch_size or 64, args.limit, args.device)
    else:
        res = C.evaluate_checkpoint(args.checkpoint, args.dataset, args.split, args.data_dir,
                                    args.batch_size or 256, args.limit, args.device)
    print(f"{res['dataset']} {args.split} ({res['n']} images), {res['checkpoint']}:")
    for k in ("auc", "acc", "sensitivity", "specificity", "ppv", "npv", "f1", "balanced_accuracy", "loss"):
        v = res.get(k)
        print(f"  {k:<18s} {v:.4f}" if isinstance(v, float) else f"  {k:<18s} {v}")
    if res.get("confusion_matrix") is not None:
        print(f"  confusion matrix (rows true, cols predicted): {res['confusion_matrix']}")
    if args.json:
        _write(args.json, res)
    if args.out:
        _write(Path(args.out) / "metrics.json", res)
    return 0


# ------------------------------------------------------------------------------------- predict
def add_predict(sub) -> None:
    p = sub.add_parser("predict", help="class probabilities for image files (PNG, JPEG, DICOM, NIfTI); with "
                                       "a 3D checkpoint for volumes (.nii / .nii.gz files, DICOM folders)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_device(p)
    p.add_argument("--json", default=None, metavar="PATH", help="also write the predictions as JSON")
    p.add_argument("--out", default=None, help="also write OUT/predictions.json")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    task = C3 if cli3d.is_3d_checkpoint(args.checkpoint) else C
    results = task.predict_files(args.checkpoint, args.images, args.device)
    for r in results:
        shown = "  ".join(f"{k} {v:.4f}" for k, v in r["probabilities"].items())
        print(f"{r['image']}: {shown}  -> {r['prediction']}")
    if args.json:
        write_json(args.json, results)
    if args.out:
        _write(Path(args.out) / "predictions.json", results)
    return 0


# ------------------------------------------------------------------------------------- explain
def add_explain(sub) -> None:
    p = sub.add_parser("explain", help="Grad-CAM and gradient saliency overlays for test images (PNG grid)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", "--data", dest="dataset", default=None,
                   help="default: the checkpoint's dataset")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    add_data_dir(p)
    p.add_argument("--n", type=positive_int, default=16, help="number of images")
    add_seed(p, 0, "which images: a seeded random sample of the split")
    p.add_argument("--target-class", type=int, default=None,
                   help="class to explain (default: the predicted one)")
    p.add_argument("--layer", default=None, help="module name for Grad-CAM (default: the last conv block)")
    add_device(p)
    p.add_argument("--out", required=True, help="output folder (writes gradcam.png and explanations.npz; "
                                                 "3D: gradcam_montage.png, axial slices)")
    p.add_argument("volumes", nargs="*", metavar="VOLUME",
                   help="3D checkpoints only: NIfTI files / DICOM folders to explain instead of dataset "
                        "volumes")
    p.set_defaults(func=cmd_explain)


def cmd_explain(args) -> int:
    if cli3d.is_3d_checkpoint(args.checkpoint):  # 3D: axial-slice montage gradcam_montage.png
        r = C3.explain_checkpoint(args.checkpoint, args.out, args.dataset, args.split, args.data_dir, args.n,
                                  args.seed, args.target_class, args.layer, args.device, files=args.volumes)
    elif args.volumes:
        C.load_trained(args.checkpoint)  # NOTE: a missing or foreign file gets its own message first
        raise CLIError(f"explaining files ({args.volumes[0]}, ...) needs a 3D checkpoint; {args.checkpoint} "
                       "is not one (2D: explain dataset images)")
    else:
        r = C.explain_checkpoint(args.checkpoint, args.out, args.dataset, args.split, args.data_dir, args.n,
                                 args.seed, args.target_class, args.layer, args.device)
    what = "volumes" if args.volumes else f"{r['dataset']} {r['split']} images"
    print(f"Grad-CAM layer: {r['layer']}; {r['n']} {what}; wrote {r['npz']}")
    if r["png"] is None:
        print(f"no PNG: {plots.MISSING_MESSAGE}", file=sys.stderr)
    else:
        print(f"wrote {r['png']}")
    return 0


def register(sub) -> None:
    add_train(sub)
    add_evaluate(sub)
    add_predict(sub)
    add_explain(sub)
