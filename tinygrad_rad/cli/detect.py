"""``tinygrad-rad detect train|evaluate|predict``: CenterNet nodule detection (tinygrad_rad.tasks.detect).

$ tinygrad-rad detect train --fold 0 --out runs/det        # train on 3 patient folds, test on fold 0
$ tinygrad-rad detect train --cv --out runs/det_cv           # 4-fold patient-wise cross-validation
$ tinygrad-rad detect evaluate --checkpoint runs/det/model.safetensors --fold 0
$ tinygrad-rad detect predict --checkpoint runs/det/model.safetensors --input slices.npz --out preds/
"""

from __future__ import annotations

import argparse
import json

from ..tasks import detect as D
from .common import (
    CLIError,
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
    """Add the ``detect`` command (train / evaluate / predict) to an argparse subparsers object."""
    det = subparsers.add_parser(
        "detect",
        help="nodule detection with a CenterNet (train / evaluate / predict)",
        description=__doc__.split("\n\n")[0],
    )
    sub = det.add_subparsers(dest="detect_command", metavar="{train,evaluate,predict}")
    sub.required = True
    d = D.DetectConfig()
    data_help = "data folder holding lidc_nodules/ (default $TINYGRAD_RAD_DATA or ../shared/data)"

    t = sub.add_parser("train", help="train on some patients, test on the held-out fold (or --cv: all folds)")
    add_data_dir(t, data_help)
    add_device(t)
    add_distributed(t)
    g = t.add_mutually_exclusive_group()
    g.add_argument("--fold", type=non_negative_int, default=d.fold, help="held-out patient fold (default 0)")
    g.add_argument("--all", dest="all_data", action="store_true", help="train on every patient (no test)")
    g.add_argument("--cv", action="store_true", help="patient-wise cross-validation over all folds")
    t.add_argument("--folds", type=positive_int, default=d.folds)
    t.add_argument("--size", type=int, default=d.size, choices=[256, 512])
    add_epochs(t, d.epochs)
    t.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    t.add_argument("--lr", type=finite_float, default=d.lr)
    t.add_argument("--base-channels", type=positive_int, default=d.base_channels)
    t.add_argument("--depth", type=positive_int, default=d.depth)
    t.add_argument("--stride", type=positive_int, default=d.stride)
    t.add_argument(
        "--crop", type=non_negative_int, default=d.crop, help="training crop size (0 = whole images)"
    )
    t.add_argument("--no-augment", dest="augment", action="store_false")
    add_seed(t, d.seed)
    t.add_argument("--top-k", type=positive_int, default=d.top_k)
    t.add_argument("--out", default=d.out)
    add_resume(t)
    t.add_argument("--limit-train", type=positive_int, default=None)
    t.add_argument("--limit-test", type=positive_int, default=None)
    t.add_argument(
        "--draw", type=non_negative_int, default=d.draw, help="how many test slices to draw with boxes"
    )
    t.add_argument("--no-progress", dest="progress", action="store_false")
    t.add_argument("--no-plots", dest="plots", action="store_false", help="no curves.png")
    t.set_defaults(func=_cmd_train)
    e = sub.add_parser("evaluate", help="FROC / AP of a checkpoint (and the blob baseline) on a patient fold")
    add_data_dir(e, data_help)
    add_device(e)
    e.add_argument("--checkpoint", required=True)
    e.add_argument(
        "--fold",
        type=non_negative_int,
        default=None,
        help="fold to test (default: the one held out in training)",
    )
    e.add_argument("--out", default=None)
    e.add_argument("--limit-test", type=positive_int, default=None)
    e.set_defaults(func=_cmd_evaluate)
    p = sub.add_parser("predict", help="detect nodules in images and draw the boxes (PNG) + predictions.json")
    add_data_dir(p, data_help)
    add_device(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument(
        "--input", required=True, help=".npz with 'images' (N, H, W), .npy, or an image file/folder"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--max-boxes", type=non_negative_int, default=5, help="boxes drawn per image")
    p.set_defaults(func=_cmd_predict)
    return det


def _cmd_train(a) -> int:
    cfg = D.DetectConfig.from_dict(vars(a))
    cfg.crop = cfg.crop or None
    if a.all_data:
        cfg.fold = None
    if a.cv:
        if a.resume:
            raise CLIError("--resume continues one fold's run; resume each fold with --resume OUT/fold<k>")
        r = D.cross_validate(cfg)
        print(
            json.dumps(
                {
                    k: {"froc_mean": v["froc_mean"], "ap50": v["ap50"], "ap10": v["ap10"]}
                    for k, v in r["pooled"].items()
                }
            )
        )
    else:
        keep = ()
        if a.resume:
            cfg.out, keep = a.resume, resume_keep(a, a.resume)
        r = D.train_one(cfg, resume=bool(a.resume), keep=keep)
        print(
            json.dumps(
                {
                    k: {"froc_mean": r[k]["froc_mean"], "ap50": r[k]["ap50"]}
                    for k in ("model", "baseline")
                    if k in r
                }
            )
        )
    return 0


def _cmd_evaluate(a) -> int:
    print(json.dumps(D.evaluate_checkpoint(a.checkpoint, a.fold, a.data_dir, a.device, a.out, a.limit_test)))
    return 0


def _cmd_predict(a) -> int:
    results = D.predict_files(a.checkpoint, a.input, a.out, a.max_boxes, a.device)
    print(f"wrote {len(results)} drawings and predictions.json (boxes in input pixels) to {a.out}")
    return 0
