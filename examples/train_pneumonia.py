"""Train a small CNN to tell pneumonia from normal chest X-rays (PneumoniaMNIST), top to bottom.

    python examples/train_pneumonia.py            # the full recipe (see EPOCHS; minutes on 2 CPU cores)
    python examples/train_pneumonia.py --tiny     # a few steps on a few images (seconds; smoke test)

The same recipe as ``tinygrad-rad train`` (library version: tinygrad_rad/tasks/classify.py), written out
as one readable script: SmallCNN, Adam, cosine learning rate, random affine augmentation whose uncovered
pixels repeat the image's edge (no black corners; no flips: chest X-rays are not left-right symmetric),
batch-norm statistics recomputed on clean training images before each validation ("precise BN"), model
selection on the validation AUC, and one final evaluation of the selected model on the test split.
"""

import argparse
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
from tinygrad_rad.data.transforms import Compose, Normalize, RandomAffine
from tinygrad_rad.metrics import roc_auc_score
from tinygrad_rad.models import SmallCNN

# ----------------------------------------------------------------------------------------- settings
DATASET = "pneumoniamnist"
DATA_DIR = os.environ.get("TINYGRAD_RAD_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
OUT_DIR = "runs/example_pneumonia"
EPOCHS = 30
BATCH_SIZE = 128
LR = 1e-3
SEED = 0
AUGMENT = True  # rotation +-10 deg, shift +-2 px, zoom 0.9-1.1, uncovered pixels = nearest edge pixel
PRECISE_BN = 2048  # clean training images that set the batch-norm statistics before each validation
DEVICE = "cpu"
NUM_THREADS = None  # None: all cores; 1 on a machine that other jobs keep busy
# ---------------------------------------------------------------------------------------------------
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--tiny", action="store_true", help="2 epochs of 2 small batches, 64 eval images")
ap.add_argument("--data-dir", default=DATA_DIR)
ap.add_argument("--out", default=OUT_DIR)
ap.add_argument("--epochs", type=int, default=EPOCHS)
args = ap.parse_args()
configure_cpu(num_threads=NUM_THREADS)  # Numba threading layer, malloc, threads (importing changes nothing)
epochs, batch_size = (2, 32) if args.tiny else (args.epochs, BATCH_SIZE)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
tr.manual_seed(SEED)

# ---- data: uint8 images -> float32 (N, 1, 28, 28) in [0, 1] -> augment -> normalise to [-1, 1]
train_set = load_medmnist(DATASET, "train", data_dir=args.data_dir)
val_set = load_medmnist(DATASET, "val", data_dir=args.data_dir)
test_set = load_medmnist(DATASET, "test", data_dir=args.data_dir)
if args.tiny:
    for ds, n in ((train_set, 64), (val_set, 64), (test_set, 64)):
        ds.images, ds.labels = ds.images[:n], ds.labels[:n]
normalize = Normalize(0.5, 0.5)
affine = RandomAffine(10, translate=(2 / 28, 2 / 28), scale=(0.9, 1.1), padding_mode="border")
train_set.transform = Compose([affine, normalize]) if AUGMENT else normalize
val_set.transform = test_set.transform = normalize
train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True, seed=SEED, device=DEVICE)
print(f"{DATASET}: {len(train_set)} train / {len(val_set)} val / {len(test_set)} test images, "
      f"labels {train_set.label_names}")

# the same random draw of clean (not augmented) training images for every precise-BN pass
pick = np.random.default_rng((SEED, 11)).permutation(len(train_set))[:PRECISE_BN]
bn_batches = [np.asarray(train_set.images[np.sort(pick[i:i + batch_size])], np.float32)[:, None] / 255.0
              for i in range(0, len(pick), batch_size)]
bn_batches = [tr.tensor((b - 0.5) / 0.5, device=DEVICE) for b in bn_batches if len(b) > 1]

# ---- model, optimiser, schedule
model = SmallCNN(in_channels=1, num_classes=2).to(DEVICE)
optimizer = optim.Adam(model.parameters(), lr=LR)
scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)  # stepped once per epoch
print(f"SmallCNN: {sum(p.numel() for p in model.parameters()):,} parameters")


def positive_probability(ds) -> np.ndarray:
    """P(pneumonia) for every image of a split, in eval mode without building a graph."""
    model.eval()
    probs = []
    with tr.no_grad():
        for x, _ in DataLoader(ds, batch_size=256, device=DEVICE):
            probs.append(model(x).softmax(1).numpy()[:, 1])
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
        loss_sum += loss.item() * len(y)
        correct += int((logits.numpy().argmax(1) == y.numpy()).sum())
        n += len(y)
    scheduler.step()
    seen += n
    # running averages describe augmented images of earlier weights: measure the current weights on clean ones
    optim.swa_utils.update_bn(bn_batches, model)
    val_auc = roc_auc_score(val_set.targets, positive_probability(val_set))
    mark = ""
    if val_auc > best_auc:
        best_auc, best_epoch, mark = val_auc, epoch + 1, " *best*"
        save_checkpoint(out / "best.safetensors", model, epoch=epoch + 1, config={"dataset": DATASET})
    dt = time.perf_counter() - t0
    print(f"epoch {epoch + 1:2d}/{epochs}  loss {loss_sum / n:.4f}  acc {correct / n:.3f}  "
          f"val AUC {val_auc:.4f}{mark}  {n / dt:.0f} img/s")
train_seconds = time.perf_counter() - t_start

# ---- test the selected model once (threshold 0.5 on P(pneumonia), i.e. argmax)
load_checkpoint(out / "best.safetensors", model)
p = positive_probability(test_set)
y = test_set.targets
pred = (p >= 0.5).astype(np.int64)
tp, tn = int(((pred == 1) & (y == 1)).sum()), int(((pred == 0) & (y == 0)).sum())
print(f"test (best epoch {best_epoch}): AUC {roc_auc_score(y, p):.4f}  ACC {(pred == y).mean():.4f}  "
      f"sensitivity {tp / max(1, (y == 1).sum()):.4f}  specificity {tn / max(1, (y == 0).sum()):.4f}  "
      f"| {train_seconds:.0f} s, {seen / train_seconds:.0f} img/s")
