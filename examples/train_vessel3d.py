"""Train a small 3D CNN to find aneurysms in brain-vessel MRA patches (VesselMNIST3D), top to bottom.

    python examples/train_vessel3d.py            # the full recipe (see EPOCHS; ~20 min on 2 CPU cores)
    python examples/train_vessel3d.py --tiny     # a few steps on a few volumes (seconds; smoke test)

The same recipe as ``tinygrad-rad train --dataset vesselmnist3d`` (library version:
tinygrad_rad/tasks/classify3d.py), written out as one readable script: SmallCNN3D (four 3x3x3
conv-BN-ReLU stages 16 -> 128 channels, two max-pools, global pool, dropout), Adam 1e-3 with a cosine
learning rate stepped every batch, random flips along each of the three axes; what is validated and kept
is an exponential moving average of the weights (time constant one epoch) whose batch-norm statistics are
recomputed on 512 clean training volumes before each validation ("precise BN"), scored with test-time
augmentation (the mean logits over the volume and its flips along D, H and W); model selection on the
validation AUC, and one final evaluation of the selected model on the test split.
"""

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
from tinygrad_rad.kernels import configure_cpu

import tinygrad_rad as tr
import tinygrad_rad.nn.functional as F
from tinygrad_rad import optim
from tinygrad_rad.checkpoint import load_checkpoint, save_checkpoint
from tinygrad_rad.data import DataLoader, load_medmnist
from tinygrad_rad.data.transforms import Compose
from tinygrad_rad.data.transforms3d import Normalize3d, RandomFlip3d
from tinygrad_rad.metrics import roc_auc_score
from tinygrad_rad.models import SmallCNN3D
from tinygrad_rad.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn

# ----------------------------------------------------------------------------------------- settings
DATASET = "vesselmnist3d"  # any 3D flag: organmnist3d nodulemnist3d adrenalmnist3d fracturemnist3d ...
DATA_DIR = os.environ.get("TINYGRAD_RAD_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
OUT_DIR = "runs/example_vessel3d"
SIZE = 28  # 28 or 64 (voxels per side)
EPOCHS = 30
BATCH_SIZE = 32
LR = 1e-3
SEED = 0
AUGMENT = True  # flip each volume along D, H and W, each with probability 0.5
EMA_EPOCHS = 1.0  # time constant of the weight average that is validated and kept (in epochs)
PRECISE_BN = 512  # clean training volumes its batch-norm statistics are recomputed on
TTA = True  # validate / test on the mean logits over the volume and its three flips
DEVICE = "cpu"
NUM_THREADS = None  # None: all cores; 1 on a machine that other jobs keep busy
# ---------------------------------------------------------------------------------------------------
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--tiny", action="store_true", help="2 epochs of 2 small batches, 32 eval volumes")
ap.add_argument("--data-dir", default=DATA_DIR)
ap.add_argument("--out", default=OUT_DIR)
ap.add_argument("--epochs", type=int, default=EPOCHS)
args = ap.parse_args()
configure_cpu(num_threads=NUM_THREADS)  # Numba threading layer, malloc, threads (importing changes nothing)
epochs, batch_size = (2, 8) if args.tiny else (args.epochs, BATCH_SIZE)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
tr.manual_seed(SEED)

# ---- data: uint8 volumes (N, 28, 28, 28) -> float32 (N, 1, 28, 28, 28) in [0, 1] -> flips -> [-1, 1]
train_set = load_medmnist(DATASET, "train", size=SIZE, data_dir=args.data_dir)
val_set = load_medmnist(DATASET, "val", size=SIZE, data_dir=args.data_dir)
test_set = load_medmnist(DATASET, "test", size=SIZE, data_dir=args.data_dir)
if args.tiny:  # NOTE: a seeded random subset: the official files list the positives first
    pick = np.random.default_rng(SEED)
    for ds, n in ((train_set, 16), (val_set, 32), (test_set, 32)):
        idx = np.sort(pick.choice(len(ds), min(n, len(ds)), replace=False))
        ds.images, ds.labels = ds.images[idx], ds.labels[idx]
normalize = Normalize3d(0.5, 0.5)
flips = RandomFlip3d(0.5, axes=(0, 1, 2))
train_set.transform = Compose([flips, normalize]) if AUGMENT else normalize
val_set.transform = test_set.transform = normalize
# NOTE: a last batch of one volume is dropped (batch norm needs more than one value per channel)
train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, seed=SEED, device=DEVICE,
                          drop_last=len(train_set) % batch_size == 1)
print(f"{DATASET}: {len(train_set)} train / {len(val_set)} val / {len(test_set)} test volumes of {SIZE}^3, "
      f"labels {train_set.label_names}")

# the same random draw of clean (not flipped) training volumes for every precise-BN pass
pick = np.random.default_rng((SEED, 11)).permutation(len(train_set))[:PRECISE_BN]
bn_batches = [np.asarray(train_set.images[np.sort(pick[i:i + batch_size])], np.float32)[:, None] / 255.0
              for i in range(0, len(pick), batch_size)]
bn_batches = [tr.tensor((b - 0.5) / 0.5, device=DEVICE) for b in bn_batches if len(b) > 1]

# ---- model, optimiser, schedule (cosine from LR to 0 over all steps, stepped after every batch)
model = SmallCNN3D(in_channels=1, num_classes=2).to(DEVICE)
optimizer = optim.Adam(model.parameters(), lr=LR)
total_steps = epochs * len(train_loader)
scheduler = optim.lr_scheduler.LambdaLR(optimizer,
                                        lambda step: 0.5 * (1 + math.cos(math.pi * step / total_steps)))
# the weight average: ema = decay * ema + (1 - decay) * weights after every step (its own BN statistics
# come from precise BN, so use_buffers=False)
decay = 1.0 - 1.0 / max(1.0, EMA_EPOCHS * len(train_loader))
ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
n_params = sum(p.numel() for p in model.parameters())
print(f"SmallCNN3D: {n_params:,} parameters, {len(train_loader)} steps/epoch")


def positive_probability(net, ds) -> np.ndarray:
    """P(aneurysm) for every volume of a split, in eval mode without building a graph (with TTA: the mean
    logits over the volume and its flips along D, H and W)."""
    net.eval()
    probs = []
    with tr.no_grad():
        for x, _ in DataLoader(ds, batch_size=64, device=DEVICE):
            views = [x] + ([x.flip(axis) for axis in (2, 3, 4)] if TTA else [])
            logits = sum(net(v) for v in views) / len(views)
            probs.append(logits.softmax(1).numpy()[:, 1])
    return np.concatenate(probs)


# ---- train; keep the weights with the best validation AUC
best_auc, best_epoch, t_start, seen = -1.0, 0, time.perf_counter(), 0
for epoch in range(epochs):
    model.train()
    t0, loss_sum, correct, n = time.perf_counter(), 0.0, 0, 0
    for x, y in train_loader:
        logits = model(x)
        loss = F.cross_entropy(logits, y)  # 2-class softmax cross-entropy (MedMNIST convention)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update_parameters(model)
        loss_sum += loss.item() * len(y)
        correct += int((logits.numpy().argmax(1) == y.numpy()).sum())
        n += len(y)
    seen += n
    update_bn(bn_batches, ema.module)  # the average's own batch-norm statistics, on clean volumes
    val_auc = roc_auc_score(val_set.targets, positive_probability(ema.module, val_set))
    mark = ""
    if val_auc > best_auc:
        best_auc, best_epoch, mark = val_auc, epoch + 1, " *best*"
        save_checkpoint(out / "best.safetensors", ema.module, epoch=epoch + 1, config={"dataset": DATASET})
    dt = time.perf_counter() - t0
    print(f"epoch {epoch + 1:2d}/{epochs}  loss {loss_sum / n:.4f}  acc {correct / n:.3f}  "
          f"val AUC {val_auc:.4f}{mark}  {n / dt:.0f} volumes/s")
train_seconds = time.perf_counter() - t_start

# ---- test the selected model once (threshold 0.5 on P(aneurysm), i.e. argmax)
load_checkpoint(out / "best.safetensors", ema.module)
p = positive_probability(ema.module, test_set)
y = test_set.targets
pred = (p >= 0.5).astype(np.int64)
tp, tn = int(((pred == 1) & (y == 1)).sum()), int(((pred == 0) & (y == 0)).sum())
print(f"test (best epoch {best_epoch}): AUC {roc_auc_score(y, p):.4f}  ACC {(pred == y).mean():.4f}  "
      f"sensitivity {tp / max(1, (y == 1).sum()):.4f}  specificity {tn / max(1, (y == 0).sum()):.4f}  "
      f"| {train_seconds:.0f} s, {seen / train_seconds:.1f} volumes/s")
