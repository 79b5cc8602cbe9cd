"""Segment the lungs on chest CT slices with a U-Net (Kaggle "Finding lungs in CT", 128x128), top to bottom.

    python examples/segment_lung_ct.py           # the full recipe (see EPOCHS; minutes on 2 CPU cores)
    python examples/segment_lung_ct.py --tiny    # a few steps on a few images (seconds; smoke test)

The same recipe as ``tinygrad-rad segment train`` (library version: tinygrad_rad/tasks/segment.py), written
out as one script: HU -> lung window [-1000, 400] -> [0, 1]; joint flip/rotate/shift/zoom of image and
mask; U-Net (depth 4, 8 base channels); Dice + BCE loss; Adam with a cosine learning rate; the epoch
with the best validation Dice is kept and evaluated once on the test split (Dice, IoU, HD95, ASD).
"""

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
from tinygrad_rad.kernels import configure_cpu

import tinygrad_rad as tr
from tinygrad_rad.checkpoint import load_checkpoint, save_checkpoint
from tinygrad_rad.data import DataLoader
from tinygrad_rad.data.segmentation import JointRandomAffine, SegmentationNPZ
from tinygrad_rad.metrics.segmentation import aggregate, segmentation_report
from tinygrad_rad.models import UNet
from tinygrad_rad.nn import DiceBCELoss
from tinygrad_rad.optim import Adam
from tinygrad_rad.plots import overlay, write_png

# ----------------------------------------------------------------------------------------- settings
DATA_DIR = os.environ.get("TINYGRAD_RAD_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
DATA_FILE = "ct_lung/lung_ct_128.npz"
OUT_DIR = "runs/example_lung"
EPOCHS = 30
BATCH_SIZE = 8
LR = 2e-3
DEPTH, BASE_CHANNELS = 4, 8
SEED = 0
NUM_THREADS = None  # None: all cores; 1 on a machine that other jobs keep busy
# ---------------------------------------------------------------------------------------------------
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--tiny", action="store_true", help="1 epoch on 8 training images, 4 val/test images")
ap.add_argument("--data-dir", default=DATA_DIR)
ap.add_argument("--out", default=OUT_DIR)
ap.add_argument("--epochs", type=int, default=EPOCHS)
args = ap.parse_args()
configure_cpu(num_threads=NUM_THREADS)  # Numba threading layer, malloc, threads (importing changes nothing)
epochs = 1 if args.tiny else args.epochs
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
tr.manual_seed(SEED)

# ---- data: int16 HU -> lung window -> float32 (N, 1, 128, 128) in [0, 1]; masks float32 0/1
path = Path(args.data_dir) / DATA_FILE
train = SegmentationNPZ(
    path, "train", augment=JointRandomAffine(degrees=10, translate=0.05, scale=(0.9, 1.1))
)
val, test = SegmentationNPZ(path, "val"), SegmentationNPZ(path, "test")
if args.tiny:
    for ds, n in ((train, 8), (val, 4), (test, 4)):
        ds.images, ds.masks, ds.ids = ds.images[:n], ds.masks[:n], ds.ids[:n]
loader = DataLoader(train, batch_size=BATCH_SIZE, shuffle=True, drop_last=True, seed=SEED)
print(f"train {len(train)} / val {len(val)} / test {len(test)} slices of {train.images.shape[-2:]}")

# ---- model, loss, optimizer
model = UNet(in_channels=1, num_classes=1, depth=DEPTH, base_channels=BASE_CHANNELS)
loss_fn = DiceBCELoss()
opt = Adam(model.parameters(), lr=LR)
print(f"UNet: {sum(p.numel() for p in model.parameters()):,} parameters")


def predict(images: np.ndarray) -> np.ndarray:
    """Boolean masks (N, H, W): sigmoid(logit) > 0.5, i.e. logit > 0."""
    model.eval()
    with tr.no_grad():
        logits = np.concatenate(
            [model(tr.tensor(images[i : i + 16])).numpy() for i in range(0, len(images), 16)]
        )
    return logits[:, 0] > 0


# ---- train; keep the epoch with the best validation Dice
total_steps, step, best, t0 = epochs * len(loader), 0, -1.0, time.time()
for epoch in range(epochs):
    model.train()
    losses = []
    for x, y in loader:
        for g in opt.param_groups:  # cosine learning rate, per step
            g["lr"] = 0.5 * LR * (1 + math.cos(math.pi * step / total_steps))
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        step += 1
    val_dice = aggregate(segmentation_report(predict(val.images), val.masks[:, 0] > 0))["dice"]
    improved = val_dice > best
    if improved:
        best = val_dice
        save_checkpoint(str(out / "best.safetensors"), model, epoch=epoch + 1)
    print(
        f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f} | val Dice {val_dice:.4f}"
        f"{' *best*' if improved else ''} | {time.time() - t0:.0f}s"
    )

# ---- test the best epoch once
load_checkpoint(str(out / "best.safetensors"), model=model)
pred = predict(test.images)
rows = segmentation_report(pred, test.masks[:, 0] > 0)
m = aggregate(rows)
print(
    f"test: Dice {m['dice']:.4f} IoU {m['iou']:.4f} HD95 {m['hd95']:.2f} px ASD {m['asd']:.2f} px "
    f"({time.time() - t0:.0f}s in all)"
)
for k in range(min(4, len(test))):  # ground truth outline green, prediction red
    write_png(out / f"test_{k}.png", overlay(test.images[k, 0], pred[k], test.masks[k, 0], scale=2))
