"""Small shared I/O helpers: atomic writes, JSON-safe conversion, the default data folder.

    >>> from tinygrad_rad.utils import write_json
    >>> write_json("runs/x/metrics.json", {"auc": np.float32(0.91), "n": np.int64(3)})

Every writer goes through :func:`atomic_output`: the data lands in a temporary file beside the target,
is fsynced, then ``os.replace``d over it, so a crash (or Ctrl-C) mid-write leaves the previous file intact
and no temporary file behind. Results get the usual ``0o666 & ~umask`` permissions; the temporary files a
killed process (SIGKILL) leaves are removed by :func:`clean_stale_tmp` at the start of the next run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import secrets
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "clean_stale_tmp",
    "is_stale_tmp",
    "json_safe",
    "write_json",
    "default_data_dir",
    "ConfigDictMixin",
    "ProgressBar",
    "load_run_checkpoint",
]


_TMP_MARK = ".tgr-tmp-"
# temporary names: ".<target name>.tgr-tmp-<pid>-<random hex><suffix>",
# e.g. ".last.safetensors.tgr-tmp-812-9f3a01c2.tmp"
_TMP_RE = re.compile(r"^\..+\.tgr-tmp-(?P<pid>\d+)-[0-9a-f]+(\.[A-Za-z0-9]+)?$")
# the mkstemp names of earlier versions: ".<target name>.<8 random chars>.tmp|.part|.png"
_LEGACY_TMP_RE = re.compile(r"^\..+\.[A-Za-z0-9]+\.[a-z0-9_]{8}\.(tmp|part|png)$")


def _process_start_time() -> float:
    """When this process started (Linux: from /proc, rounded down to the second), else the import time."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time since boot
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return time.time()


_PROCESS_START = _process_start_time()


def _new_tmp(path: Path, suffix: str) -> Path:
    """An empty new temporary file beside ``path``, mode ``0o666 & ~umask`` (as ``open(..., "w")`` gives)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, flags, 0o666)  # NOTE: the kernel applies the umask (mkstemp would give 0600)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}")  # pragma: no cover


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temporary file name beside ``path``; on success fsync it and ``os.replace`` it over ``path``.

        >>> with atomic_output("model.safetensors") as tmp:
        ...     save_file(tensors, tmp)

    The result has the permissions of any new file (``0o666 & ~umask``). The temporary file is named
    ``.<name>.tgr-tmp-<pid>-<random><suffix>`` so that :func:`clean_stale_tmp` can find the ones a killed
    process left behind.

    # NOTE: on any exception (KeyboardInterrupt included) the temporary file is deleted and ``path`` is
    # left untouched. The parent folder must exist.
    """
    path = Path(path)
    tmp = str(_new_tmp(path, suffix))
    mode = stat.S_IMODE(os.stat(tmp).st_mode)  # 0o666 & ~umask
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
            if stat.S_IMODE(os.fstat(f.fileno()).st_mode) != mode:
                # NOTE: some writers replace the file with their own 0600 temp file (safetensors does)
                os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def is_stale_tmp(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary file of :func:`atomic_output` (or of earlier versions) that no live
    writer owns: its name matches, it is older than the current process, and its writer has exited."""
    p = Path(path)
    m = _TMP_RE.match(p.name)
    if m is None and _LEGACY_TMP_RE.match(p.name) is None:
        return False
    try:
        st = p.lstat()
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_mtime >= _PROCESS_START:
        return False
    if m is not None:
        pid = int(m.group("pid"))
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                return False  # NOTE: a live process of that pid may still be writing it
            except ProcessLookupError:
                pass
            except (PermissionError, OSError, OverflowError):
                return False
    return True


def clean_stale_tmp(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Delete the temporary files that killed writes left in ``folder``; return the paths removed.

        >>> clean_stale_tmp("runs/pneumonia")     # at the start of a run, before writing anything
        [PosixPath('runs/pneumonia/.last.safetensors.tgr-tmp-4242-0a1b2c3d.tmp')]

    Only files named like :func:`atomic_output`'s (or earlier versions') temporary files, older than the
    current process and whose writer has exited, are removed (see :func:`is_stale_tmp`); a missing folder
    gives ``[]``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.rglob(".*") if recursive else folder.glob(".*"):
        if is_stale_tmp(p):
            try:
                p.unlink()
                removed.append(p)
            except OSError:  # NOTE: gone meanwhile, or a read-only folder: nothing to do
                pass
    return sorted(removed)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(v):
    """``v`` with numpy scalars/arrays, tuples and Paths turned into plain JSON values.

        >>> json_safe({"auc": np.float32(0.5), "hd95": float("inf"), 1: np.arange(2)})
        {'auc': 0.5, 'hd95': None, '1': [0, 1]}

    # NOTE: JSON has no inf/nan; they are written as null. Dict keys become strings.
    """
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.ndarray):
        return json_safe(v.tolist())
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return v


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``json_safe(obj)`` to ``path`` as indented JSON (with a final newline), atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2) + "\n")


def default_data_dir() -> str | None:
    """``$TINYGRAD_RAD_DATA``, else ``../shared/data`` beside the cwd or the project when it exists, else None
    (the download cache)."""
    env = os.environ.get("TINYGRAD_RAD_DATA")
    if env:
        return env
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return str(cand)
    return None


class ConfigDictMixin:
    """``to_dict``/``from_dict`` for a run-config dataclass (checkpoints and ``metrics.json`` store it).

    ``from_dict`` ignores unknown keys (a config from a newer/older version still loads).

        >>> SegmentConfig.from_dict(SegmentConfig(epochs=3).to_dict()).epochs
        3
    """

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class ProgressBar:
    """Per-step progress: tqdm when installed (and ``enabled``), else a stderr line every ~10% of ``total``.

        >>> bar = ProgressBar(100, "epoch 1/5", enabled=True)
        >>> bar.update(loss="0.693"); bar.close()
    """

    def __init__(self, total: int, desc: str, enabled: bool, initial: int = 0):
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, initial
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", leave=True,
                                dynamic_ncols=True, file=sys.stderr)
            except ImportError:
                pass

    def update(self, **postfix) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(1)
        elif self.enabled and (self.n == self.total or self.n % max(1, self.total // 10) == 0):
            items = " ".join(f"{k}={v}" for k, v in postfix.items())
            print(f"{self.desc} {self.n}/{self.total} {items}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def load_run_checkpoint(checkpoint: str | os.PathLike, command: str, kind: str, config_cls, build_model,
                        device: str = "cpu"):
    """(model in eval mode, config) from a checkpoint whose ``extra["kind"]`` is ``kind``.

        >>> model, cfg = load_run_checkpoint("runs/lung/best.safetensors", "segment", "segmentation",
        ...                                  SegmentConfig, build_model)

    ``command`` starts the error messages (a missing file, a checkpoint of another kind).
    """
    from .checkpoint import config_from_checkpoint, load_checkpoint, read_checkpoint_info

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{command}: no checkpoint at {checkpoint}")
    stored = read_checkpoint_info(checkpoint)
    found = (stored.get("extra") or {}).get("kind")
    if found != kind:
        raise ValueError(f"{command}: {checkpoint} is not a {kind} checkpoint (kind {found!r})")
    cfg = config_from_checkpoint(config_cls, stored["config"], checkpoint, device=device)
    model = build_model(cfg)
    load_checkpoint(str(checkpoint), model=model)
    model.eval()
    return model, cfg
