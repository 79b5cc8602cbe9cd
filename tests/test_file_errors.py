"""Broken files give ONE clear error naming the path (and the array / field): NumPy files, MedMNIST files,
checkpoints; and artefact writes respect the umask and leave no stale temporary files."""

from __future__ import annotations

import os
import pickle
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
