"""The 3D side of ``tinygrad-rad train|evaluate|predict|explain`` (tinygrad_rad.tasks.classify3d).

    $ tinygrad-rad train --dataset vesselmnist3d                  # the 3D recipe (every 3D MedMNIST flag)
    $ tinygrad-rad train --resume runs/train3d                    # continue it (or: --epochs N for longer)
    $ tinygrad-rad evaluate --checkpoint runs/train3d/best.safetensors
    $ tinygrad-rad predict --checkpoint runs/train3d/best.safetensors scan.nii.gz dicom_folder/
    $ tinygrad-rad explain --checkpoint runs/train3d/best.safetensors --n 8 --out runs/train3d/explain

The commands are the 2D ones (cli/classify.py); a 3D dataset flag, or a checkpoint / run folder of a 3D
run, sends them here. ``train`` then starts from the 3D recipe (:class:`Classify3DConfig`), not the 2D
defaults, and applies only the options given on the command line.
"""

from __future__ import annotations

from pathlib import Path

from ..tasks import classify3d as C3
from ..tasks.loop import LAST_NAME
from ..utils import default_data_dir
from .common import CLIError, fit_and_report, given, resume_keep

__all__ = ["wants_3d_train", "is_3d_checkpoint", "train_config", "cmd_train"]

# train options of cli/classify.py that the 3D config takes when they are on the command line
TAKEN = ("model", "epochs", "batch_size", "eval_batch_size", "lr", "optimizer", "momentum", "weight_decay",
         "scheduler", "warmup_epochs", "augment", "size", "out", "limit_train", "limit_eval",
         "label_smoothing", "class_weight", "mixup", "ema_epochs", "precise_bn", "train_subset",
         "subset_seed", "tta")


def _resume_dir(resume) -> Path:
    out = Path(resume)
    return out.parent if out.is_file() else out


def wants_3d_train(args) -> bool:
    """``train`` on a 3D flag, or ``train --resume OUT`` of a 3D run."""
    if getattr(args, "resume", None):
        return C3.is_3d_checkpoint(_resume_dir(args.resume) / LAST_NAME)
    return C3.is_3d_dataset(getattr(args, "dataset", None))


def is_3d_checkpoint(path) -> bool:
    """A 3D run's checkpoint (or run folder): evaluate / predict / explain go to the 3D task."""
    return C3.is_3d_checkpoint(path)


def train_config(args) -> C3.Classify3DConfig:
    """The 3D recipe with the options given on the command line (checked before any work starts)."""
    seen = given(args.parser, getattr(args, "argv", []) or [])
    picked = {k: getattr(args, k) for k in TAKEN if k in seen}
    cfg = C3.Classify3DConfig(dataset=args.dataset.lower(), seed=args.seed, device=args.device,
                              data_dir=args.data_dir or default_data_dir(), num_threads=args.num_threads,
                              plots=not args.no_plots, progress=not args.no_progress,
                              download=not args.no_download, **picked)
    try:
        C3.check_config(cfg)
    except ValueError as e:
        raise CLIError(str(e)) from None
    return cfg


def cmd_train(args) -> int:
    if args.resume:
        out = _resume_dir(args.resume)
        keep = resume_keep(args, out)
        cfg = C3.Classify3DConfig(out=str(out), device=args.device, num_threads=args.num_threads,
                                  epochs=args.epochs, progress=not args.no_progress, plots=not args.no_plots,
                                  data_dir=args.data_dir)
        resume = True
    else:
        cfg, keep, resume = train_config(args), (), False
    return fit_and_report(args, C3.fit, cfg, resume, keep)
