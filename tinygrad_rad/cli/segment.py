"""``tinygrad-rad segment train|evaluate|predict``: binary U-Net segmentation (tinygrad_rad.tasks.segment).

    $ tinygrad-rad segment train --out runs/lung          # ct_lung/lung_ct_128.npz from the data folder
    $ tinygrad-rad segment evaluate --checkpoint runs/lung/best.safetensors
    $ tinygrad-rad segment predict --checkpoint runs/lung/best.safetensors --input scans/ --out preds/

Data: an ``.npz`` in the ct_lung format (``--data``, relative to ``--data-dir``), or two folders of
images and masks (``--images``/``--masks``), split 70/10/20 into train/val/test by ``--seed``.
"""

from __future__ import annotations

import argparse
import json

from ..tasks import segment as S
from ..utils import json_safe
from .common import (
    add_data_dir,
    add_device,
    add_distributed,
    add_epochs,
    add_resume,
    add_seed,
    finite_float,
    non_negative_int,
    positive_int,
    resume_keep,
)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``segment`` command (train / evaluate / predict) to an argparse subparsers object."""
    seg = subparsers.add_parser(
        "segment",
        help="binary segmentation with a U-Net (train / evaluate / predict)",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = seg.add_subparsers(dest="segment_command", metavar="{train,evaluate,predict}")
    sub.required = True
    d = S.SegmentConfig()
    t = sub.add_parser("train", help="train a U-Net; keeps the best validation-Dice checkpoint and tests it")
    add_data_dir(t)
    add_device(t)
    add_distributed(t)
    t.add_argument(
        "--data",
        "--dataset",
        dest="data",
        default=d.data,
        help=f"npz in the ct_lung format, relative to --data-dir (default {d.data})",
    )
    t.add_argument("--images", default=None, help="folder of images (instead of --data); pairs with --masks")
    t.add_argument("--masks", default=None, help="folder of masks with the same file names as --images")
    t.add_argument("--size", type=positive_int, default=None, help="resize folder images to SIZE x SIZE")
    add_epochs(t, d.epochs)
    t.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    t.add_argument("--lr", type=finite_float, default=d.lr)
    t.add_argument("--weight-decay", type=finite_float, default=d.weight_decay)
    t.add_argument("--depth", type=positive_int, default=d.depth)
    t.add_argument("--base-channels", type=positive_int, default=d.base_channels)
    t.add_argument("--up", choices=["transpose", "interp"], default=d.up)
    t.add_argument("--no-batch-norm", dest="batch_norm", action="store_false")
    t.add_argument("--loss", choices=["dice_bce", "dice", "bce", "focal", "tversky"], default=d.loss)
    t.add_argument("--no-augment", dest="augment", action="store_false")
    t.add_argument("--threshold", type=finite_float, default=d.threshold)
    add_seed(t, d.seed)
    t.add_argument("--out", default=d.out)
    add_resume(t)
    t.add_argument(
        "--limit-train", type=positive_int, default=None, help="use only the first N training images"
    )
    t.add_argument(
        "--limit-eval", type=positive_int, default=None, help="use only the first N val and test images"
    )
    t.add_argument(
        "--overlays", type=non_negative_int, default=d.overlays, help="how many test overlays to write"
    )
    t.add_argument("--no-progress", dest="progress", action="store_false")
    t.add_argument("--no-plots", dest="plots", action="store_false", help="no curves.png")
    t.set_defaults(func=_cmd_train)
    e = sub.add_parser("evaluate", help="Dice / IoU / HD95 / ASD of a checkpoint on a split")
    add_data_dir(e)
    add_device(e)
    e.add_argument("--checkpoint", required=True)
    e.add_argument(
        "--data",
        "--dataset",
        dest="data",
        default=None,
        help="npz to evaluate on (default: the one the model was trained on)",
    )
    e.add_argument("--split", default="test")
    e.add_argument(
        "--spacing",
        type=finite_float,
        nargs=2,
        default=(1.0, 1.0),
        metavar=("ROW_MM", "COL_MM"),
        help="pixel size for distances in mm (default 1 1 = pixels)",
    )
    e.add_argument("--out", default=None, help="folder for metrics.json and overlays (default: print only)")
    e.add_argument("--overlays", type=non_negative_int, default=8)
    e.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("predict", help="segment images (file or folder) and write mask and overlay PNGs")
    add_data_dir(p)
    add_device(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="image file or folder (PNG/JPEG/DICOM/NIfTI/.npy)")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--hu-window",
        type=finite_float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="HU window for DICOM/NIfTI/.npy CT inputs; use the training window (ct_lung: -1000 400)",
    )
    p.add_argument("--threshold", type=finite_float, default=None)
    p.set_defaults(func=_cmd_predict)
    return seg


def _cmd_train(a) -> int:
    cfg = S.SegmentConfig.from_dict(vars(a))
    keep = ()
    if a.resume:
        cfg.out, keep = a.resume, resume_keep(a, a.resume)
    r = S.fit_segmentation(cfg, resume=bool(a.resume), keep=keep)
    keys = ("test_dice", "test_iou", "test_hd95", "test_asd", "best_epoch", "train_seconds")
    print(json.dumps({k: r[k] for k in keys if k in r}))
    return 0


def _cmd_evaluate(a) -> int:
    res = S.evaluate_checkpoint(
        a.checkpoint, a.split, a.data, a.data_dir, a.device, a.spacing, a.out, a.overlays
    )
    print(json.dumps(json_safe({k: v for k, v in res.items() if k not in ("per_image", "overlays")})))
    return 0


def _cmd_predict(a) -> int:
    written = S.predict_files(a.checkpoint, a.input, a.out, a.hu_window, a.threshold, a.device)
    print(f"wrote {len(written)} masks and overlays to {a.out}")
    return 0
