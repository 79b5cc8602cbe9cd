"""Detect lung nodules on LIDC-IDRI CT slices with a small CenterNet, by patient-wise cross-validation.

    python examples/detect_nodules.py           # 4 folds x EPOCHS (minutes on 2 CPU cores)
    python examples/detect_nodules.py --tiny    # 2 folds, 1 epoch, a few slices (seconds; smoke test)

The same recipe as ``tinygrad-rad detect train --cv`` (library version: tinygrad_rad/tasks/detect.py),
written out as one script. 108 slices from 8 patients, 512 -> 256 px; 4 folds of 2 patients, so slices
of one nodule never sit in both train and test. Each fold trains from scratch on random 128x128 crops
(flips, shift, zoom; boxes follow), then the whole 256x256 test slices are decoded (3x3 peak picking,
NMS) and scored with FROC (sensitivity at 1/8..8 false positives per slice) and AP, next to the
non-learned Hessian blob detector on the same slices.
"""

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
from tinygrad_rad.kernels import configure_cpu

import tinygrad_rad as tr
from tinygrad_rad.data import DataLoader
from tinygrad_rad.data.detection import DetectionDataset, RandomBoxAffine, load_lidc_nodules, patient_folds
from tinygrad_rad.metrics.detection import detection_report
from tinygrad_rad.models import CenterNet
from tinygrad_rad.models.detection import centernet_loss, decode_centernet
from tinygrad_rad.optim import Adam
from tinygrad_rad.tasks.detect import blob_detect

# ----------------------------------------------------------------------------------------- settings
DATA_DIR = os.environ.get("TINYGRAD_RAD_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
SIZE, CROP, STRIDE = 256, 128, 2
FOLDS = 4
EPOCHS = 20
BATCH_SIZE = 8
LR = 2e-3
BASE_CHANNELS, DEPTH = 8, 3
TOP_K = 20
SEED = 0
NUM_THREADS = None  # None: all cores; 1 on a machine that other jobs keep busy
# ---------------------------------------------------------------------------------------------------
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--tiny", action="store_true")
ap.add_argument("--data-dir", default=DATA_DIR)
ap.add_argument("--epochs", type=int, default=EPOCHS)
args = ap.parse_args()
configure_cpu(num_threads=NUM_THREADS)  # Numba threading layer, malloc, threads (importing changes nothing)
epochs, folds = (1, 2) if args.tiny else (args.epochs, FOLDS)

data = load_lidc_nodules(args.data_dir, SIZE)  # images (108, 1, 256, 256), boxes: list of (K, 4)
print(
    f"{len(data['images'])} slices, {sum(len(b) for b in data['boxes'])} nodule boxes, "
    f"{len(np.unique(data['patient']))} patients"
)


def fold_predictions(model, images):
    model.eval()
    boxes, scores = [], []
    with tr.no_grad():
        for i in range(0, len(images), 8):
            out = {k: v.numpy() for k, v in model(tr.tensor(images[i : i + 8])).items()}
            for k in range(len(out["heat"])):
                b, s = decode_centernet(out["heat"][k], out["size"][k], out["offset"][k], STRIDE, top_k=TOP_K)
                boxes.append(b)
                scores.append(s)
    return boxes, scores


pooled = {"model": ([], [], []), "baseline": ([], [], [])}
t0 = time.time()
for fold, (train_idx, test_idx) in enumerate(patient_folds(data["patient"], folds)):
    if args.tiny:
        train_idx, test_idx = train_idx[:8], test_idx[:2]
    tr.manual_seed(SEED)
    ds = DetectionDataset(
        data["images"][train_idx],
        [data["boxes"][i] for i in train_idx],
        stride=STRIDE,
        augment=RandomBoxAffine(),
        crop=CROP,
    )
    loader = DataLoader(ds, batch_size=BATCH_SIZE, shuffle=True, drop_last=True, seed=SEED)
    model = CenterNet(in_channels=1, base_channels=BASE_CHANNELS, depth=DEPTH, stride=STRIDE)
    opt = Adam(model.parameters(), lr=LR)
    total, step = epochs * len(loader), 0
    for _epoch in range(epochs):
        model.train()
        for x, heat, size, offset, mask in loader:
            for g in opt.param_groups:
                g["lr"] = 0.5 * LR * (1 + math.cos(math.pi * step / total))
            loss, parts = centernet_loss(model(x), heat, size, offset, mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    test_images = data["images"][test_idx]
    gt = [data["boxes"][i] for i in test_idx]
    results = {
        "model": fold_predictions(model, test_images),
        "baseline": tuple(zip(*[blob_detect(im[0], top_k=TOP_K) for im in test_images])),
    }
    patients = sorted(set(data["patient"][test_idx].tolist()))
    for name, (b, s) in results.items():
        r = detection_report(list(b), list(s), gt)
        pooled[name][0].extend(b)
        pooled[name][1].extend(s)
        pooled[name][2].extend(gt)
        print(
            f"fold {fold} (test patients {patients}) {name:8s}: FROC mean {r['froc_mean']:.3f} "
            f"AP50 {r['ap50']:.3f} AP10 {r['ap10']:.3f} | {time.time() - t0:.0f}s"
        )

for name, (b, s, g) in pooled.items():
    r = detection_report(b, s, g)
    sens = " ".join(f"{k}:{v:.2f}" for k, v in r["froc_sensitivity"].items())
    print(
        f"pooled {name:8s}: FROC mean {r['froc_mean']:.3f} ({sens}) AP50 {r['ap50']:.3f} AP10 {r['ap10']:.3f}"
    )
