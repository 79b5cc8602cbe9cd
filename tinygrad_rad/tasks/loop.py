"""THE training loop, shared by every task (classification, segmentation, detection, ...).

    >>> from tinygrad_rad.tasks.loop import train
    >>> result = train(ClassifyTask(TrainConfig(epochs=2, out="runs/try")))   # what classify.fit does

A task (a :class:`Task` subclass) says what is specific to it: its data, model, optimizer, scheduler
and loader (``setup``), the loss of one batch (``train_step``), the validation metrics (``validate``)
and the final test (``test``). The loop does the rest, the same way for every task:

* seeds ``tinygrad_rad`` and NumPy's global generator with ``config.seed``, then calls ``setup``;
* per epoch: one pass over the loader (forward, loss, ``zero_grad``, ``backward``, ``step``, scheduler
  step, the weight average's update when the task keeps one, per batch) with a progress bar; a
  non-finite loss stops the run before the update with :class:`NonFiniteLoss` (the checkpoints on
  disk stay those of the last good epoch);
* after each epoch: ``validate``; ``best.safetensors`` when the task's ``monitor`` metric improved
  (higher is better; without a monitor there is no best and the last weights are tested),
  ``last.safetensors``, ``history.csv``;
* Ctrl-C (or a callback returning True) saves ``last.safetensors`` after the current step and raises
  :class:`TrainingInterrupted`; ``train(task, resume=True)`` continues to exactly the result an
  uninterrupted run gives (the loader draws each epoch's order and each batch's augmentation from
  ``(seed, epoch[, batch])``, and the checkpoint holds the global generator, the optimizer, the
  scheduler and the running sums of the epoch);
* at the end: the best (or last) weights are loaded, ``test`` measures them once, and the loop writes
  ``metrics.json`` and ``curves.png`` (when ``config.plots`` and matplotlib is installed).

Distributed (``mpirun -n N`` / ``tinygrad-rad train --nproc N``, after
``tinygrad_rad.distributed.init_process_group()``): the loader is sharded with the same global batch
(:func:`~tinygrad_rad.distributed.shard_loader`), the model wrapped in ``DistributedDataParallel``
(rank 0's weights, averaged gradients), and every step's loss, stats, non-finite flag and stop request
are summed over the ranks in one small all-reduce, so every rank takes the same decisions and the
history holds global-batch numbers. Validation runs on every rank (same weights, same data: the same
metrics); only rank 0 logs, shows progress, writes checkpoints, history, plots and runs ``test``
(the others wait for it and return its result).

A task's config is a dataclass with at least ``epochs``, ``out``, ``seed``, ``device`` and ``progress``
(and optionally ``num_threads``, ``plots``, ``data_dir``).
"""

from __future__ import annotations

import csv
import io
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

import tinygrad_rad as tr

from .. import distributed as dist
from .. import plots
from ..checkpoint import config_from_checkpoint, load_checkpoint, read_checkpoint_info, save_checkpoint
from ..utils import ProgressBar, atomic_write_text, clean_stale_tmp, json_safe, write_json

__all__ = ["Task", "train", "TrainingInterrupted", "NonFiniteLoss", "SigintGuard", "write_history_csv",
           "stderr_log", "LAST_NAME", "BEST_NAME", "resolve_checkpoint"]

LAST_NAME = "last.safetensors"
BEST_NAME = "best.safetensors"


def resolve_checkpoint(path) -> Path:
    """A checkpoint file as given, or a run folder's best checkpoint (its last one when there is no best)."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST_NAME if (path / BEST_NAME).is_file() else path / LAST_NAME
    return path
# config fields a resumed run takes from the caller, not from the checkpoint (they do not change results)
RUNTIME_FIELDS = ("device", "num_threads", "progress", "plots", "out")


def stderr_log(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


class TrainingInterrupted(KeyboardInterrupt):
    """From :func:`train` after Ctrl-C (or a callback's stop request), once ``last.safetensors`` is saved."""

    def __init__(self, checkpoint: str, out: str, epoch: int, step: int):
        super().__init__(f"training interrupted at epoch {epoch + 1}, step {step}; saved {checkpoint}")
        self.checkpoint, self.out, self.epoch, self.step = checkpoint, out, epoch, step


class NonFiniteLoss(FloatingPointError):
    """The training loss became nan/inf; the step was not applied and nothing was saved after it."""

    def __init__(self, value: float, epoch: int, step: int, lr: float, checkpoint: str | None):
        kept = f"; the last good checkpoint is {checkpoint}" if checkpoint else "; no checkpoint was saved"
        super().__init__(f"training loss became {value} at epoch {epoch + 1}, step {step} (lr {lr:g}); "
                         f"try a lower --lr{kept}")
        self.value, self.epoch, self.step, self.checkpoint = value, epoch, step, checkpoint


class Task:
    """What one kind of training needs; subclass it and fill in the methods (see ``classify.py``).

    ``setup`` must set ``self.model``, ``self.optimizer``, ``self.scheduler`` (a per-step scheduler, or
    None) and ``self.loader`` (a seeded :class:`~tinygrad_rad.data.DataLoader`); it may set ``self.ema``
    (an :class:`~tinygrad_rad.optim.swa_utils.AveragedModel` of the model): the loop then folds the
    weights into it after every step, saves it in ``last`` (for resuming) and saves *its* weights as
    ``best`` (the task's ``validate`` should measure it).
    """

    name = "task"
    monitor: str | None = None  # validation metric (key of validate()) that picks best.safetensors
    last_name, best_name = LAST_NAME, BEST_NAME
    history_fields: list | None = None  # history.csv columns (default: the keys of the first row)

    def __init__(self, config):
        self.config = config
        self.model = self.optimizer = self.scheduler = self.loader = self.ema = None
        self.state: dict = {}  # the loop's state (epoch, step, history, best, ...), set by train()

    # ---- to fill in
    def setup(self, log: Callable[[str], None]) -> None:
        """Load the data (check that no split is empty), build model, optimizer, scheduler, loader."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line logged before training (data sizes, model, recipe)."""
        return f"{self.name}: {self.config}"

    def train_step(self, batch) -> tuple:
        """Forward + loss of one batch -> ``(loss Tensor, stats)``; ``stats`` is a dict of numbers that
        the loop sums over the epoch (``n``: the batch size, and whatever ``epoch_row`` needs)."""
        raise NotImplementedError

    def progress(self, part: dict) -> dict:
        """Progress-bar postfix from the epoch's running sums."""
        return {"loss": f"{part['loss_sum'] / max(part['n'], 1):.4f}"}

    def validate(self) -> dict:
        """Validation metrics after an epoch (``{}`` when the task has no validation split)."""
        return {}

    def epoch_row(self, epoch: int, lr: float, part: dict, val: dict, seconds: float) -> dict:
        """The history.csv row of an epoch."""
        return {"epoch": epoch + 1, "lr": lr, "train_loss": part["loss_sum"] / max(part["n"], 1),
                **{f"val_{k}": v for k, v in val.items()}, "epoch_seconds": seconds}

    def epoch_message(self, row: dict, improved: bool) -> str:
        items = " ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "lr")
                         and isinstance(v, float))
        return f"epoch {row['epoch']}/{self.config.epochs}: {items}{' *best*' if improved else ''}"

    def checkpoint_extra(self, val: dict) -> dict:
        """What a checkpoint stores besides weights, optimizer and config (what ``load`` needs)."""
        return {}

    def test(self, state: dict, checkpoint: dict, log: Callable[[str], None]) -> dict:
        """Measure the selected weights once -> the ``metrics.json`` dict (and write the task's own
        pictures). ``checkpoint`` is ``{"path", "epoch"}`` of the weights being tested."""
        return {}

    def summary(self, result: dict) -> str:
        """The last line logged, once ``metrics.json`` is written."""
        return f"{self.name}: wrote {Path(self.config.out) / 'metrics.json'}"


def write_history_csv(path, history: list, fields: list | None = None) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields or list(history[0]), extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


class SigintGuard:
    """Turn the first Ctrl-C into a stop request checked between steps; a second one aborts at once."""

    def __init__(self):
        self.stop = False
        self._old = None

    def _handler(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\nCtrl-C: saving a checkpoint after this step (press again to abort without saving)",
              file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _fresh_state() -> dict:
    return {"epoch": 0, "step": 0, "history": [], "best": None, "best_epoch": None, "train_seconds": 0.0,
            "train_images": 0, "partial": {}}


def _set_threads(n) -> None:
    # NOTE: only an explicit request changes the process (the CLI calls kernels.configure_cpu first)
    if n:
        from ..kernels.threads import set_num_threads

        set_num_threads(int(n))


def train(task: Task, resume: bool = False, callbacks: Iterable[Callable] = (),
          log: Callable[[str], None] | None = None, keep: Iterable[str] = ()) -> dict:
    """Run ``task`` for ``task.config.epochs`` epochs, test the selected weights once; returns the
    ``metrics.json`` dict.

    ``resume=True`` continues from ``config.out/last.safetensors`` with the config stored there (but the
    caller's ``device``, ``num_threads``, ``progress``, ``plots``, ``out``, ``data_dir`` when given, and
    the fields named in ``keep``, e.g. ``("epochs",)`` to train a finished run for longer).
    ``callbacks`` are called as ``cb(event, info)`` with event ``"step"`` or ``"epoch"``; returning True
    requests a stop exactly as Ctrl-C does.
    """
    log = log or stderr_log
    world, main = dist.get_world_size(), dist.is_main_process()
    if not main:
        log = _quiet  # only rank 0 talks
    cfg = task.config
    out = Path(cfg.out)
    last_path, best_path = out / task.last_name, out / task.best_name
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"cannot resume: {last_path} does not exist")
        stored = read_checkpoint_info(last_path)
        names = [*RUNTIME_FIELDS, *keep]
        if getattr(cfg, "data_dir", None) is not None:
            names.append("data_dir")
        given = {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}
        given["out"] = str(out)
        cfg = task.config = config_from_checkpoint(type(cfg), stored["config"], last_path, **given)
    elif last_path.is_file():
        log(f"note: {out} already holds a run; starting over (continue it instead with --resume {out})")
    if int(cfg.epochs) < 1:
        raise ValueError(f"{task.name}: epochs must be >= 1, got {cfg.epochs}")
    out.mkdir(parents=True, exist_ok=True)
    if main:  # temporary files of a write that a killed run left behind (never complete files)
        for stale in clean_stale_tmp(out):
            log(f"removed {stale.name}: a temporary file a killed run left in {out}")
    _set_threads(getattr(cfg, "num_threads", None))
    tr.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))

    task.setup(log)
    if world > 1:  # this rank's share of every global batch (raises if the batch is not divisible)
        task.loader = dist.shard_loader(task.loader)
    model, optimizer, scheduler, loader = task.model, task.optimizer, task.scheduler, task.loader
    spe = len(loader)
    state = _fresh_state()
    if resume:
        ck = load_checkpoint(str(last_path), model=model, optimizer=optimizer, scheduler=scheduler,
                             ema=task.ema)
        state = ck["extra"]["train_state"]
        if "best_auc" in state:  # NOTE: classification checkpoints written before tasks/ (train.py)
            state["best"] = state.pop("best_auc")
            if "seen" in state["partial"]:
                state["partial"]["n"] = state["partial"].pop("seen")
        tr.set_rng_state(ck["extra"]["rng"])
        log(f"resuming {last_path} at epoch {state['epoch'] + 1}, step {state['step']}")
    loader.load_state_dict({"seed": cfg.seed, "epoch": state["epoch"], "batch": state["step"]})
    ddp = None
    if world > 1:  # NOTE: after the resume: rank 0's (loaded) weights are broadcast to every rank
        if getattr(dist.group(), "sync_batchnorm", False):  # same Parameter objects: optimizer unchanged
            model = task.model = dist.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp = task.model = dist.DistributedDataParallel(model)
    task.state = state  # read-only for the task (e.g. train_seconds in its checkpoint_extra)
    log(task.describe())

    def save(path: Path, epoch: int, val: dict, best: bool = False) -> None:
        if not main:
            return
        extra = {"train_state": json_safe(state), "rng": tr.get_rng_state(), "version": tr.__version__,
                 **json_safe(task.checkpoint_extra(val))}
        if best and task.ema is not None:  # the weights that were validated (the average), loadable as any
            save_checkpoint(str(path), task.ema.module, epoch=epoch, config=cfg.to_dict(), extra=extra)
        else:  # the trained weights (+ the average, when there is one), to resume
            save_checkpoint(str(path), model, optimizer=optimizer, scheduler=scheduler, epoch=epoch,
                            config=cfg.to_dict(), extra=extra, ema=task.ema)

    def saved() -> str | None:
        return str(last_path) if last_path.is_file() else None

    with SigintGuard() as guard:
        for epoch in range(state["epoch"], cfg.epochs):
            model.train()
            part = state["partial"] = state["partial"] or {"loss_sum": 0.0, "n": 0, "seconds": 0.0}
            bar = ProgressBar(spe, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress and main,
                              initial=state["step"])
            t_epoch = t_prev = time.perf_counter()
            lr0 = float(optimizer.param_groups[0]["lr"])
            stop = wants_stop = False
            try:
                for batch in loader:
                    loss, stats = task.train_step(batch)
                    lv = float(loss.item())
                    step = state["step"] + 1
                    if world > 1:  # global loss and stats; every rank stops or goes on together
                        lv, stats, wants_stop = _reduce_step(lv, stats, guard.stop or stop)
                    if not math.isfinite(lv):
                        raise NonFiniteLoss(lv, epoch, step, float(optimizer.param_groups[0]["lr"]), saved())
                    optimizer.zero_grad()
                    loss.backward()
                    if ddp is not None:
                        ddp.finish_gradient_synchronization()  # no-op unless a parameter got no gradient
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    if task.ema is not None:
                        task.ema.update_parameters(model)
                    # step time includes waiting for the loader (augmentation runs in its thread)
                    now = time.perf_counter()
                    dt, t_prev = now - t_prev, now
                    part["loss_sum"] += lv * stats["n"]
                    for k, v in stats.items():
                        part[k] = part.get(k, 0) + v
                    part["seconds"] += dt
                    state["step"] = step
                    state["train_seconds"] += dt
                    state["train_images"] += stats["n"]
                    bar.update(**task.progress(part))
                    for cb in callbacks:
                        stop = bool(cb("step", {"epoch": epoch, "step": step, "loss": lv})) or stop
                    # NOTE: distributed, a stop request takes effect at the next step's all-reduce
                    if (wants_stop if world > 1 else guard.stop or stop) and step < spe:
                        save(last_path, epoch, {})
                        raise TrainingInterrupted(str(last_path), str(out), epoch, step)
            finally:
                bar.close()
            # ---- end of epoch: validate, record, checkpoint
            val = task.validate()
            row = task.epoch_row(epoch, lr0, part, val, time.perf_counter() - t_epoch)
            state["history"].append(json_safe(row))
            state["epoch"], state["step"], state["partial"] = epoch + 1, 0, {}
            improved = False
            if task.monitor is not None:
                v = val[task.monitor]
                improved = state["best"] is None or (math.isfinite(v) and v > state["best"])
                if improved:
                    state["best"] = v if math.isfinite(v) else None
                    state["best_epoch"] = epoch + 1
                    save(best_path, epoch + 1, val, best=True)
            save(last_path, epoch + 1, val)
            if main:
                write_history_csv(out / "history.csv", state["history"], task.history_fields)
            if world > 1:
                dist.barrier()  # the checkpoints are on disk before any rank reads them
            log(task.epoch_message(row, improved))
            for cb in callbacks:
                stop = bool(cb("epoch", {"epoch": epoch, "row": row})) or stop
            if world > 1:
                stop = bool(dist.reduce_sums([float(guard.stop or stop)])[0])
            if (guard.stop or stop) and epoch + 1 < cfg.epochs:
                raise TrainingInterrupted(str(last_path), str(out), epoch + 1, 0)

    # ---- test the selected weights once (rank 0; the others wait for its result)
    if not main:
        return _wait_for_result()
    tested = best_path if task.monitor is not None else last_path
    ck = load_checkpoint(str(tested), model=model)
    if task.ema is not None and task.monitor is None:
        model.load_state_dict(task.ema.module.state_dict())  # the average is what was validated
    result = task.test(state, {"path": str(tested), "epoch": ck.get("epoch")}, log)
    result = json_safe(result)
    write_json(out / "metrics.json", result)
    if getattr(cfg, "plots", True) and state["history"]:
        if plots.available():
            plots.plot_history(state["history"], out / "curves.png")
        else:
            log(f"plots skipped: {plots.MISSING_MESSAGE}")
    log(task.summary(result))
    if world > 1:
        dist.barrier(timeout=_RESULT_TIMEOUT)
        dist.broadcast_object_list([result])
    return result


# ------------------------------------------------------------------------------- distributed helpers
_RESULT_TIMEOUT = 24 * 3600.0  # rank 0 tests alone; the others may wait long for it


def _quiet(s: str) -> None:
    pass


def _reduce_step(lv: float, stats: dict, stop: bool) -> tuple:
    """Sum over the ranks (one all-reduce): loss x n, the stats, a non-finite flag and stop requests."""
    keys = sorted(stats)
    finite = math.isfinite(lv)
    vals = [lv * stats["n"] if finite else 0.0, 0.0 if finite else 1.0, 1.0 if stop else 0.0]
    sums = dist.reduce_sums(vals + [float(stats[k]) for k in keys])
    total = {k: (int(v) if isinstance(stats[k], int) else v) for k, v in zip(keys, sums[3:])}
    loss = float("nan") if sums[1] else sums[0] / max(total["n"], 1)
    return loss, total, bool(sums[2])


def _wait_for_result() -> dict:
    dist.barrier(timeout=_RESULT_TIMEOUT)
    box = [None]
    dist.broadcast_object_list(box)
    return box[0]
