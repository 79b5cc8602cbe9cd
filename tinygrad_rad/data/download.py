"""Data folders and checked downloads.

    >>> from tinygrad_rad.data.download import resolve_data_dir, download_url
    >>> resolve_data_dir(None)                      # $TINYGRAD_RAD_DATA or ~/.cache/tinygrad_rad
    PosixPath('/home/me/.cache/tinygrad_rad')
    >>> download_url(url, "/tmp/x.npz", md5="28209eda...")   # streamed, MD5-checked, atomic

A download streams into a temporary file beside the target, is MD5-checked, and only then is moved
into place with ``os.replace``, so a half-finished or corrupted file never takes the target's name.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from pathlib import Path

from ..utils import atomic_output

ENV_VAR = "TINYGRAD_RAD_DATA"
_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed (network, HTTP or checksum)."""


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tinygrad_rad`` or ``~/.cache/tinygrad_rad``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinygrad_rad"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: the argument, else ``$TINYGRAD_RAD_DATA``, else :func:`user_cache_dir`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return user_cache_dir()


def md5sum(path: str | os.PathLike, chunk_size: int = _CHUNK) -> str:
    """Hex MD5 of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


class _Progress:
    """tqdm when installed, else one self-overwriting stderr line."""

    def __init__(self, total: int | None, desc: str, enabled: bool):
        self.total, self.desc, self.enabled, self.n = total, desc, enabled, 0
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024)
            except ImportError:
                self._bar = None

    def update(self, n: int) -> None:
        self.n += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
        else:
            mb = self.n / 2**20
            tot = f"/{self.total / 2**20:.1f}" if self.total else ""
            sys.stderr.write(f"\r{self.desc}: {mb:.1f}{tot} MiB")
            sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\n")


def download_url(
    url: str,
    path: str | os.PathLike,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    allow_unverified: bool = False,
) -> Path:
    """Download ``url`` to ``path`` (streamed to a temp file, MD5-checked, then ``os.replace``d).

    ``md5=None`` is refused unless ``allow_unverified=True`` (so a missing checksum is never skipped
    silently). A wrong checksum deletes the temp file and raises :class:`DownloadError` naming the
    expected and the received MD5.
    """
    path = Path(path)
    if md5 is None and not allow_unverified:
        raise DownloadError(
            f"no MD5 is known for {url}; refusing to download {path.name} unverified "
            "(pass allow_unverified=True to accept it without a checksum)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.md5()
    with atomic_output(path, suffix=".part") as tmp:
        with open(tmp, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "tinygrad_rad"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
                bar = _Progress(int(total) if total else None, f"downloading {path.name}", progress)
                try:
                    for block in iter(lambda: resp.read(_CHUNK), b""):
                        out.write(block)
                        h.update(block)
                        bar.update(len(block))
                finally:
                    bar.close()
        got = h.hexdigest()
        if md5 is not None and got != md5.lower():
            raise DownloadError(
                f"MD5 mismatch for {url}: expected {md5.lower()}, got {got}; the download was deleted"
            )
    return path
