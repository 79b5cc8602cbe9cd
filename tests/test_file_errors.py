"""Broken files give ONE clear error naming the path (and the array / field): NumPy files, MedMNIST files,
checkpoints; and artefact writes respect the umask and leave no stale temporary files."""

from __future__ import annotations

import os
import pickle
import re
import struct
import zipfile

import numpy as np
import pytest

from tinygrad_rad.data import io as dio
from tinygrad_rad.data import load_medmnist
from tinygrad_rad.data.io import NumpyFileError, load_npy, load_npz, open_npz

NEVER = "allow_pickle=True"  # numpy's own message suggests it: ours never does


def _raises(fn, match, cls=NumpyFileError):
    with pytest.raises(cls, match=match) as e:
        fn()
    msg = str(e.value)
    assert NEVER not in msg and "\n" not in msg, msg
    return e.value


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.fixture
def good(tmp_path):
    p = tmp_path / "good.npz"
    np.savez(p, a=np.arange(1000, dtype=np.int64), b=np.asfortranarray(np.arange(12.0).reshape(3, 4)))
    return p


# ------------------------------------------------------------------------------------ load_npz / load_npy
def test_good_files_load_like_numpy(tmp_path, good):
    d = load_npz(good)
    ref = np.load(good)
    assert set(d) == {"a", "b"}
    for k in d:
        np.testing.assert_array_equal(d[k], ref[k])
        assert d[k].dtype == ref[k].dtype
    assert d["b"].flags.f_contiguous
    c = tmp_path / "c.npz"
    np.savez_compressed(c, x=np.linspace(0, 1, 5000, dtype=np.float32), e=np.zeros((0, 3), np.uint8),
                        s=np.array(["ab", "c"]), be=np.arange(4, dtype=">i4"))
    dc = load_npz(c, keys=["x"], optional=["e", "nope"])
    assert set(dc) == {"x", "e"} and dc["e"].shape == (0, 3)
    with open_npz(c) as z:
        assert sorted(z.files) == ["be", "e", "s", "x"] and "x" in z and z.get("nope") is None
        assert list(z["s"]) == ["ab", "c"] and z["be"].dtype == np.dtype(">i4")
    np.save(tmp_path / "v.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    v = load_npy(tmp_path / "v.npy")
    assert v.shape == (2, 3) and v.dtype == np.int16 and v[1, 2] == 5


def test_empty_random_pickle_and_wrong_kind(tmp_path, good):
    e = tmp_path / "empty.npz"
    e.write_bytes(b"")
    _raises(lambda: load_npz(e), r"empty.npz is empty \(0 bytes\)")
    r = tmp_path / "random.npz"
    r.write_bytes(np.random.default_rng(0).bytes(300))
    _raises(lambda: load_npz(r), r"random.npz is not a valid .npz file")
    rn = tmp_path / "random.npy"
    rn.write_bytes(b"hello, not numpy at all")
    _raises(lambda: load_npy(rn), r"random.npy is not a valid .npy file")
    pk = tmp_path / "pickled.npy"
    pk.write_bytes(pickle.dumps({"a": 1}))
    _raises(lambda: load_npy(pk), r"pickled.npy is a Python pickle.*never unpickles")
    _raises(lambda: load_npy(good), r"good.npz is a .npz archive, not a single-array .npy")
    np.save(tmp_path / "one.npy", np.zeros(3))
    _raises(lambda: load_npz(tmp_path / "one.npy"), r"one.npy is a single-array .npy file, not a .npz")


def test_object_arrays_are_refused_without_unpickling(tmp_path, monkeypatch):
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    np.savez(tmp_path / "o.npz", ok=np.ones(2), obj=np.array([None, {"x": 1}], dtype=object))
    z = open_npz(tmp_path / "o.npz")
    assert z["ok"].sum() == 2
    _raises(lambda: z["obj"], r"o.npz: array 'obj' contains Python objects \(pickle\); tinygrad_rad never "
            r"unpickles files")
    z.close()
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    _raises(lambda: load_npy(tmp_path / "o.npy"), r"o.npy contains Python objects \(pickle\)")


def test_corrupted_members(tmp_path, good):
    raw = bytearray(good.read_bytes())
    raw[raw.find(b"\x93NUMPY") + 400] ^= 0xFF  # inside the data of 'a'
    bad = tmp_path / "crc.npz"
    bad.write_bytes(raw)
    err = _raises(lambda: load_npz(bad), r"crc.npz: array 'a' is corrupted \(BadZipFile: Bad CRC-32")
    assert isinstance(err, ValueError)
    # a deflate stream that is not valid: zlib.error
    with zipfile.ZipFile(tmp_path / "z.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", _npy_bytes(np.arange(5000)))
    raw = bytearray((tmp_path / "z.npz").read_bytes())
    start = 30 + len("x.npy")  # the first local header is 30 bytes + the name, then the deflate data
    raw[start:start + 8] = b"\xff" * 8
    (tmp_path / "z.npz").write_bytes(raw)
    _raises(lambda: load_npz(tmp_path / "z.npz"), r"z.npz: array 'x' is corrupted \((error|BadZipFile)")
    # an archive cut in half (no central directory)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:2000])
    _raises(lambda: load_npz(cut), r"cut.npz is not a valid .npz file \(truncated or damaged zip")
    # a corrupt .npy header inside the archive
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as zf:
        zf.writestr("x.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 20) + b"{'descr': <f4, oops}\n")
    _raises(lambda: load_npz(tmp_path / "h.npz"), r"h.npz: array 'x' has a corrupt .npy header")


def test_header_claiming_more_data_or_a_giant_shape(tmp_path, monkeypatch):
    data = _npy_bytes(np.arange(10, dtype=np.int64))
    more = data.replace(b"(10,)", b"(99,)")
    (tmp_path / "more.npy").write_bytes(more)
    _raises(lambda: load_npy(tmp_path / "more.npy"),
            r"more.npy is truncated or corrupt: its header claims shape \(99,\) int64 \(792 bytes\) "
            r"but only 80 bytes of data follow")
    giant = data.replace(b"'shape': (10,), ", b"'shape': (10000000, 10000000), ")
    with zipfile.ZipFile(tmp_path / "giant.npz", "w") as zf:
        zf.writestr("images.npy", giant)
    _raises(lambda: load_npz(tmp_path / "giant.npz"), r"giant.npz: array 'images' is truncated or corrupt: "
            r"its header claims shape \(10000000, 10000000\) int64 \(727.6 TiB\)")

    # a member that really holds its bytes but cannot be allocated: MemoryError -> one line
    def no_memory(*a, **k):
        raise MemoryError("Unable to allocate")

    np.savez(tmp_path / "ok.npz", x=np.arange(10))
    monkeypatch.setattr(dio.np, "empty", no_memory)
    _raises(lambda: load_npz(tmp_path / "ok.npz"), r"ok.npz: array 'x' cannot be loaded: shape \(10,\) int64 "
            r"needs 80 bytes of memory \(MemoryError\)")


def test_folder_missing_and_permission(tmp_path, good, monkeypatch):
    err = _raises(lambda: load_npz(tmp_path), r"is a folder, not a .npz file", IsADirectoryError)
    assert isinstance(err, ValueError) and str(tmp_path) in str(err)
    err = _raises(lambda: load_npy(tmp_path / "nope.npy", what="input image"),
                  r"input image .*nope.npy does not exist", FileNotFoundError)
    assert isinstance(err, NumpyFileError)

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(dio, "open", denied, raising=False)
    err = _raises(lambda: load_npz(good), r"good.npz: permission denied", PermissionError)
    assert "not found" not in str(err) and "does not exist" not in str(err)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_permission_denied_for_real(tmp_path, good):
    good.chmod(0)
    try:
        _raises(lambda: load_npz(good), r"permission denied", PermissionError)
    finally:
        good.chmod(0o644)


def test_missing_keys_name_expected_and_found(good):
    err = _raises(lambda: load_npz(good, keys=["a", "images", "masks"], what="segmentation data"),
                  r"segmentation data .*good.npz is missing the array\(s\) \['images', 'masks'\]; "
                  r"expected \['a', 'images', 'masks'\], found \['a', 'b'\]", KeyError)
    assert isinstance(err, ValueError)
    with open_npz(good) as z:
        _raises(lambda: z["zz"], r"good.npz has no array 'zz'; it holds \['a', 'b'\]", KeyError)


# ------------------------------------------------------------------------------------ MedMNIST files
def test_medmnist_broken_files_name_the_path(tmp_path):
    from tinygrad_rad.data import MedMNISTFileError

    p = tmp_path / "breastmnist.npz"
    p.write_bytes(b"")
    _raises(lambda: load_medmnist("breastmnist", data_dir=tmp_path, download=False),
            r"MedMNIST file .*breastmnist.npz is empty \(0 bytes\)", MedMNISTFileError)
    p.write_bytes(pickle.dumps([1, 2]))
    _raises(lambda: load_medmnist("breastmnist", data_dir=tmp_path, download=False),
            r"breastmnist.npz is a Python pickle", MedMNISTFileError)
    p.unlink()
    p.mkdir()
    _raises(lambda: load_medmnist("breastmnist", data_dir=tmp_path, download=False),
            r"breastmnist.npz is a folder", IsADirectoryError)


# ------------------------------------------------------------------------------------ checkpoints
def _ck(tmp_path, name="c.safetensors", **kw):
    pytest.importorskip("safetensors")
    from tinygrad_rad import optim
    from tinygrad_rad.checkpoint import save_checkpoint
    from tinygrad_rad.models import SmallCNN

    model = SmallCNN(1, 2)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    cfg = {"lr": 1e-3, "epochs": 3}
    return save_checkpoint(tmp_path / name, model, opt, epoch=2, config=cfg, **kw), model


def _rewrite_meta(src, dst, **fields):
    """A copy of checkpoint ``src`` at ``dst`` with some metadata fields replaced by raw strings."""
    import safetensors
    import safetensors.numpy as stn

    tensors = stn.load_file(str(src))
    with safetensors.safe_open(str(src), framework="np") as f:
        meta = dict(f.metadata())
    meta.update(fields)
    stn.save_file(tensors, str(dst), metadata=meta)
    return dst


def test_truncated_or_garbage_checkpoints(tmp_path, monkeypatch):
    from tinygrad_rad import checkpoint
    from tinygrad_rad.checkpoint import CheckpointError, load_checkpoint

    ck, model = _ck(tmp_path)
    data = ck.read_bytes()
    cases = {
        "empty": (b"", r"empty.safetensors is not a readable safetensors checkpoint: the file is empty"),
        "tiny": (data[:5], r"tiny.safetensors .*truncated to 5 bytes"),
        "header": (data[:200], r"header.safetensors .*length field says \d+ bytes but the file holds 200"),
        "half": (data[: len(data) // 2], r"half.safetensors .*truncated: the tensor data should be"),
        "garbage": (np.random.default_rng(1).bytes(5000), r"garbage.safetensors is not a readable"),
        "json": (struct.pack("<Q", 9) + b"{not json" + b"\0" * 10, r"json.safetensors .*header is not valid"),
    }
    for name, (raw, match) in cases.items():
        p = tmp_path / f"{name}.safetensors"
        p.write_bytes(raw)
        _raises(lambda p=p: load_checkpoint(p, model), match, CheckpointError)
    _raises(lambda: load_checkpoint(tmp_path, model), r"is a directory", IsADirectoryError)

    def denied(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checkpoint, "open", denied, raising=False)
    err = _raises(lambda: load_checkpoint(ck, model), r"c.safetensors: permission denied", PermissionError)
    assert isinstance(err, CheckpointError)


def test_malformed_metadata_fields_name_file_and_field(tmp_path):
    from tinygrad_rad import optim
    from tinygrad_rad.checkpoint import CheckpointError, load_checkpoint

    ck, model = _ck(tmp_path)
    cases = [
        ({"epoch": '"three"'}, {},
         r"e0.safetensors: metadata field 'epoch' is malformed: expected an integer, got 'three' \(str\)"),
        ({"epoch": "{oops"}, {}, r"e1.safetensors: metadata field 'epoch' is not valid JSON"),
        ({"config": "[1, 2]"}, {}, r"e2.safetensors: metadata field 'config' is malformed: expected a JSON "
                                   r"object, got \[1, 2\] \(list\)"),
        ({"optimizer": '{"type": "Adam", "param_groups": 5}'}, {"opt": True},
         r"e3.safetensors: metadata field 'optimizer' is malformed"),
        ({"optimizer": '{"type": "Adam", "param_groups": [{}], "state": {"x": {}}}'}, {"opt": True},
         r"e4.safetensors: metadata field 'optimizer' is malformed"),
        ({"rng": '{"numpy": {"name": "MT19937", "keys": [1], "pos": 0}}'}, {"restore_rng": True},
         r"e5.safetensors: metadata field 'rng' is malformed"),
    ]
    for i, (fields, kw, match) in enumerate(cases):
        bad = _rewrite_meta(ck, tmp_path / f"e{i}.safetensors", **fields)
        opt = optim.Adam(model.parameters(), lr=1e-3) if kw.pop("opt", False) else None
        _raises(lambda bad=bad, opt=opt, kw=kw: load_checkpoint(bad, model, optimizer=opt, **kw), match,
                CheckpointError)
    assert load_checkpoint(ck, model)["epoch"] == 2  # the good one still loads


def test_config_from_checkpoint_checks_each_field(tmp_path):
    import dataclasses

    from tinygrad_rad.checkpoint import CheckpointError, config_from_checkpoint

    @dataclasses.dataclass
    class Cfg:
        lr: float = 1e-3
        epochs: int = 3
        size: int | None = None
        scale: tuple = (0.9, 1.1)
        augment: bool = True
        out: str = "runs/x"

    p = tmp_path / "last.safetensors"
    cfg = config_from_checkpoint(Cfg, {"lr": 1, "epochs": 5, "size": None, "scale": [1, 2], "old": 1}, p,
                                 out="elsewhere")
    assert cfg == Cfg(lr=1, epochs=5, scale=[1, 2], out="elsewhere")
    for field, value, want in [("lr", "fast", "float"), ("epochs", 2.5, "int"), ("size", "big", "int | None"),
                               ("augment", 1, "bool"), ("scale", 3, "tuple"), ("out", None, "str")]:
        _raises(lambda f=field, v=value: config_from_checkpoint(Cfg, {f: v}, p),
                rf"last.safetensors: config field '{field}' is malformed: expected {re.escape(want)}, got",
                CheckpointError)
    _raises(lambda: config_from_checkpoint(Cfg, ["lr"], p), r"field 'config' is malformed", CheckpointError)
    _raises(lambda: config_from_checkpoint(Cfg, None, p), r"field 'config' is missing", CheckpointError)


# ------------------------------------------------------------------------------------ artefacts
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    from tinygrad_rad.utils import atomic_output, atomic_write_text, write_json

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        write_json(tmp_path / "metrics.json", {"auc": 0.5})
        with atomic_output(tmp_path / "b.bin", suffix=".part") as tmp:
            assert (os.stat(tmp).st_mode & 0o777) == 0o666 & ~umask  # the temp file already has it
            with open(tmp, "wb") as f:
                f.write(b"1")
        (tmp_path / "plain.txt").write_text("x")  # what any other output gets
        ck = None
        if _has_safetensors():
            ck, _ = _ck(tmp_path, "last.safetensors")
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    for name in ("a.txt", "metrics.json", "b.bin", "plain.txt") + (("last.safetensors",) if ck else ()):
        assert (os.stat(tmp_path / name).st_mode & 0o777) == want, (name, oct(umask))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _has_safetensors() -> bool:
    try:
        import safetensors  # noqa: F401
    except ImportError:
        return False
    return True


def test_temp_names_are_recognisable_and_removed_on_error(tmp_path):
    from tinygrad_rad.utils import atomic_output

    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "history.csv") as tmp:
            name = os.path.basename(tmp)
            assert re.fullmatch(rf"\.history\.csv\.tgr-tmp-{os.getpid()}-[0-9a-f]{{8}}\.tmp", name), name
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_clean_stale_tmp_removes_only_stale_temp_files(tmp_path):
    from tinygrad_rad import utils
    from tinygrad_rad.utils import clean_stale_tmp, is_stale_tmp

    old = utils._PROCESS_START - 100
    dead, live = _dead_pid(), os.getppid()
    names = {
        f".last.safetensors.tgr-tmp-{dead}-0a1b2c3d.tmp": True,     # killed writer
        f".metrics.json.tgr-tmp-{os.getpid()}-00ff00ff.tmp": True,  # older than us: not ours to finish
        f".loss.png.tgr-tmp-{dead}-12345678.png": True,
        ".last.safetensors.k2j_x9q1.tmp": True,                      # an earlier version's mkstemp name
        f".best.safetensors.tgr-tmp-{live}-0a1b2c3d.tmp": False,     # its writer may still be running
        ".notes.tmp": False,                                         # not ours
        "last.safetensors": False,
        "x.tgr-tmp-1-00.tmp": False,                                 # not hidden
    }
    for n in names:
        (tmp_path / n).write_bytes(b"partial")
        os.utime(tmp_path / n, (old, old))
    fresh = tmp_path / f".history.csv.tgr-tmp-{dead}-abcdef01.tmp"  # newer than this process: kept
    fresh.write_bytes(b"")
    (tmp_path / f".d.tgr-tmp-{dead}-0a.tmp").mkdir()                 # a folder: kept
    sub = tmp_path / "overlays"
    sub.mkdir()
    (sub / f".a.png.tgr-tmp-{dead}-01.png").write_bytes(b"")
    os.utime(sub / f".a.png.tgr-tmp-{dead}-01.png", (old, old))

    removed = clean_stale_tmp(tmp_path)
    assert sorted(p.name for p in removed) == sorted(n for n, stale in names.items() if stale)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {n for n, stale in names.items() if not stale} | {fresh.name, f".d.tgr-tmp-{dead}-0a.tmp",
                                                                     "overlays"}
    assert not is_stale_tmp(fresh) and clean_stale_tmp(tmp_path) == []
    assert [p.name for p in clean_stale_tmp(tmp_path, recursive=True)] == [f".a.png.tgr-tmp-{dead}-01.png"]
    assert clean_stale_tmp(tmp_path / "missing") == []


def test_killed_writer_leaves_a_temp_file_the_next_run_removes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    utils_py = os.path.join(os.path.dirname(__file__), "..", "tinygrad_rad", "utils.py")
    load = ("import importlib.util as u, sys; s = u.spec_from_file_location('tgr_utils', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); d = sys.argv[2]\n")
    writer = load + (
        "import os, time\n"
        "with m.atomic_output(os.path.join(d, 'last.safetensors')) as tmp:\n"
        "    open(tmp, 'wb').write(b'half a checkpoint'); print('ready', flush=True); time.sleep(60)\n"
    )
    (tmp_path / "last.safetensors").write_bytes(b"previous")
    p = subprocess.Popen([sys.executable, "-c", writer, utils_py, str(tmp_path)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    left = [q.name for q in tmp_path.iterdir() if q.name != "last.safetensors"]
    assert len(left) == 1 and ".tgr-tmp-" in left[0]
    time.sleep(1.1)  # NOTE: the process start time is known to the second
    out = subprocess.run([sys.executable, "-c", load + "print([q.name for q in m.clean_stale_tmp(d)])",
                          utils_py, str(tmp_path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr(left)
    assert [q.name for q in tmp_path.iterdir()] == ["last.safetensors"]
    assert (tmp_path / "last.safetensors").read_bytes() == b"previous"


def test_run_checkpoint_with_a_malformed_config_field(tmp_path):
    import dataclasses

    from tinygrad_rad.checkpoint import CheckpointError, save_checkpoint
    from tinygrad_rad.models import SmallCNN
    from tinygrad_rad.utils import ConfigDictMixin, load_run_checkpoint

    pytest.importorskip("safetensors")

    @dataclasses.dataclass
    class Cfg(ConfigDictMixin):
        base_channels: int = 8
        device: str = "cpu"

    ck = save_checkpoint(tmp_path / "best.safetensors", SmallCNN(1, 2), config={"base_channels": "eight"},
                         extra={"kind": "segmentation"})
    _raises(lambda: load_run_checkpoint(ck, "segment", "segmentation", Cfg, lambda c: pytest.fail("built")),
            r"best.safetensors: config field 'base_channels' is malformed: expected int, got 'eight' \(str\)",
            CheckpointError)
