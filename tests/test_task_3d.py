"""The 3D classification task (tinygrad_rad.tasks.classify3d) and its command line: training on the shared
loop (files, exact resume), evaluate / predict on NIfTI files and DICOM folders, 3D Grad-CAM montages,
one-line errors. Tiny synthetic MedMNIST-3D files and a tiny model keep it to seconds."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import tinygrad_rad as tr
from tinygrad_rad.checkpoint import load_checkpoint
from tinygrad_rad.cli import main
from tinygrad_rad.models import MODELS, SmallCNN3D, register_model
from tinygrad_rad.tasks import TrainingInterrupted
from tinygrad_rad.tasks import classify3d as C3


@pytest.fixture(scope="module", autouse=True)
def tiny_model():
    """A small SmallCNN3D (same layout, narrow stages) so that the tests take seconds; unregistered after."""
    register_model("tinycnn3d", lambda in_channels=1, num_classes=2: SmallCNN3D(in_channels, num_classes,
                                                                                 widths=(4, 8, 8, 8)))
    yield "tinycnn3d"
    MODELS.pop("tinycnn3d", None)


def _volumes(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Noise volumes; label 1 ones hold a bright ball off-centre (a learnable 'aneurysm')."""
    y = (np.arange(n) % 2).astype(np.uint8)
    x = rng.integers(0, 90, (n, 28, 28, 28)).astype(np.int64)
    d, h, w = np.meshgrid(*(np.arange(28),) * 3, indexing="ij")
    ball = (d - 10) ** 2 + (h - 16) ** 2 + (w - 12) ** 2 < 25
    x[y == 1] += 140 * ball
    return np.clip(x, 0, 255).astype(np.uint8), y.reshape(-1, 1)


def _write_vessel3d(folder, n=(24, 12, 12), seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, m in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = _volumes(m, rng)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "vesselmnist3d.npz", **arrays)
    return arrays


def _cfg(data, out, **kw):
    base = dict(dataset="vesselmnist3d", model="tinycnn3d", epochs=1, batch_size=8, eval_batch_size=16,
                data_dir=str(data), out=str(out), progress=False, plots=False, download=False)
    return C3.Classify3DConfig(**{**base, **kw})


def _nifti(path, vol):
    """A NIfTI file whose tinygrad_rad volume (axes S, P, L) is exactly ``vol`` (1 mm voxels)."""
    nib = pytest.importorskip("nibabel")
    data = np.ascontiguousarray(np.asarray(vol, np.float32)[:, ::-1, ::-1].transpose(2, 1, 0))
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _dicom_folder(folder, vol, spacing=(1.0, 1.0, 1.0)):
    """One axial DICOM slice per file (shuffled names) whose series reads back as ``vol``."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    uid = generate_uid()
    names = np.random.default_rng(0).permutation(len(vol))
    for k in range(len(vol)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", uid, int(names[k]) + 1
        ds.ImagePositionPatient = [0.0, 0.0, k * spacing[0]]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
        raw = np.asarray(vol[k]).astype(np.int16)
        ds.Rows, ds.Columns = raw.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = raw.tobytes()
        ds.save_as(str(folder / f"IM{names[k]:04d}"), enforce_file_format=True)
    assert pydicom  # imported for the skip
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One 2-epoch training run on a synthetic vesselmnist3d file: (data dir, out dir, arrays, result)."""
    root = tmp_path_factory.mktemp("task3d")
    arrays = _write_vessel3d(root / "data")
    tr.manual_seed(0)
    res = C3.fit(_cfg(root / "data", root / "run", epochs=2), log=lambda s: None)
    return root / "data", root / "run", arrays, res


# ------------------------------------------------------------------------------------------ training
def test_training_writes_the_loop_files(run):
    data, out, arrays, res = run
    for name in ("last.safetensors", "best.safetensors", "history.csv", "metrics.json",
                 "test_predictions.npz"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(0.0 <= float(r["val_auc"]) <= 1.0 for r in rows)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test_auc"] == pytest.approx(res["test_auc"]) and 0.0 <= saved["test_auc"] <= 1.0
    assert saved["n_train"] == 24 and saved["n_test"] == 12 and saved["flip_axes"] == [0, 1, 2]
    assert saved["config"]["model"] == "tinycnn3d" and saved["best_epoch"] in (1, 2)
    ck = load_checkpoint(str(out / "best.safetensors"))
    assert ck["extra"]["kind"] == C3.KIND and ck["extra"]["size"] == 28
    assert C3.is_3d_checkpoint(out) and not C3.is_3d_checkpoint(out / "missing.safetensors")


def test_the_default_recipe_is_the_reference_one():
    cfg = C3.Classify3DConfig()
    assert (cfg.model, cfg.batch_size, cfg.lr, cfg.optimizer, cfg.scheduler, cfg.augment) == (
        "smallcnn3d", 32, 1e-3, "adam", "cosine", True)
    assert C3.flip_axes_for(["vessel", "aneurysm"]) == (0, 1, 2)
    assert C3.flip_axes_for(["liver", "kidney-right", "kidney-left"]) == ()  # a mirror swaps sides


def test_resume_after_an_interrupt_is_exact(tmp_path):
    data = tmp_path / "data"
    _write_vessel3d(data, n=(20, 8, 8))
    a = C3.fit(_cfg(data, tmp_path / "a", epochs=2), log=lambda s: None)

    def stop(event, info):
        return event == "step" and info["epoch"] == 0 and info["step"] == 1

    with pytest.raises(TrainingInterrupted):
        C3.fit(_cfg(data, tmp_path / "b", epochs=2), callbacks=[stop], log=lambda s: None)
    b = C3.fit(_cfg(data, tmp_path / "b", epochs=2), resume=True, log=lambda s: None)
    wa = load_checkpoint(str(tmp_path / "a" / "last.safetensors"))["model_state"]
    wb = load_checkpoint(str(tmp_path / "b" / "last.safetensors"))["model_state"]
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    assert a["test_auc"] == b["test_auc"] and a["test_loss"] == b["test_loss"]


def test_real_vesselmnist3d_subset_one_epoch(data_dir, tmp_path):
    if not (data_dir / "vesselmnist3d.npz").is_file():
        pytest.skip("vesselmnist3d.npz is absent")
    # NOTE: the official file lists positives first: the first 64 val / test volumes hold both classes
    cfg = C3.Classify3DConfig(epochs=1, batch_size=16, limit_train=32, limit_eval=64, data_dir=str(data_dir),
                              out=str(tmp_path / "real"), progress=False, plots=False, download=False)
    res = C3.fit(cfg, log=lambda s: None)
    assert res["n_train"] == 32 and res["n_val"] == 64 and res["config"]["model"] == "smallcnn3d"
    assert 0.0 <= res["test_auc"] <= 1.0 and np.isfinite(res["test_loss"])
    assert (tmp_path / "real" / "best.safetensors").is_file()


@pytest.mark.parametrize("flag", C3.FLAGS_3D)
def test_every_3d_flag_goes_to_the_3d_task(flag):
    from tinygrad_rad.cli import build_parser
    from tinygrad_rad.cli.classify3d import wants_3d_train

    argv = ["train", "--dataset", flag]
    args = build_parser().parse_args(argv)
    args.argv = argv
    assert wants_3d_train(args)
    C3.check_config(C3.Classify3DConfig(dataset=flag, size=64))
    with pytest.raises(ValueError, match="2D MedMNIST flag"):
        C3.check_config(C3.Classify3DConfig(dataset="pneumoniamnist"))


def test_multiclass_side_named_flag_at_64_voxels(tmp_path):
    """organmnist3d (11 classes naming sides: no flips) from a 64^3 file; predict resizes to 64^3."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, m in (("train", 11), ("val", 11), ("test", 11)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (m, 64, 64, 64)).astype(np.uint8)
        arrays[f"{split}_labels"] = (np.arange(m) % 11).reshape(-1, 1).astype(np.uint8)
    np.savez(tmp_path / "organmnist3d_64.npz", **arrays)
    res = C3.fit(_cfg(tmp_path, tmp_path / "run", dataset="organmnist3d", size=64, batch_size=6),
                 log=lambda s: None)
    assert res["flip_axes"] == [] and res["task"] == "multi-class" and len(res["test_per_class_auc"]) == 11
    model, meta = C3.load_trained(tmp_path / "run")
    assert meta["size"] == 64 and meta["num_classes"] == 11
    (r,) = C3.predict_files(tmp_path / "run", [_nifti(tmp_path / "v.nii.gz", rng.random((30, 50, 40)))])
    assert len(r["probabilities"]) == 11 and r["prediction"] in meta["label_names"]


# ------------------------------------------------------------------------------- evaluate / predict
def test_evaluate_checkpoint_reproduces_the_test_metrics(run):
    data, out, _, res = run
    ev = C3.evaluate_checkpoint(out / "best.safetensors", data_dir=str(data))
    assert ev["n"] == 12 and ev["auc"] == pytest.approx(res["test_auc"]) and ev["loss"] == pytest.approx(
        res["test_loss"], rel=1e-5)


def test_predict_a_nifti_file_and_a_dicom_folder(run, tmp_path):
    data, out, arrays, _ = run
    vols = arrays["test_images"][:2]
    model, meta = C3.load_trained(out)
    # predict_files applies the run's test-time augmentation (flips, part of the default recipe): so here
    direct = C3.predict(model, vols, meta["task"], **C3.tta_options(meta["config"], meta["label_names"]))
    assert C3.tta_options(meta["config"], meta["label_names"])["flip_axes"]
    nii = [_nifti(tmp_path / f"v{i}.nii.gz", v) for i, v in enumerate(vols)]
    dcm = _dicom_folder(tmp_path / "dicom", vols[1])
    # the window (127.5, 255) maps 0..255 to [0, 1] exactly: the volume read back is the training volume
    np.testing.assert_array_equal(C3.load_volume_for_model(nii[0], 28, window=(127.5, 255.0)), vols[0])
    np.testing.assert_array_equal(C3.load_volume_for_model(dcm, 28, window=(127.5, 255.0)), vols[1])
    got = C3.predict_files(out, [*nii, dcm], window=(127.5, 255.0))
    p = np.array([[r["probabilities"][k] for k in ("vessel", "aneurysm")] for r in got])
    np.testing.assert_allclose(p, direct[[0, 1, 1]], rtol=1e-5, atol=1e-7)
    assert got[2]["prediction"] in ("vessel", "aneurysm") and got[2]["image"] == str(dcm)
    # the default intensity mapping (percentiles) on an anisotropic volume: cropped to a cube, resized
    big = _nifti(tmp_path / "big.nii.gz", np.random.default_rng(1).integers(0, 2000, (40, 36, 30)))
    v = C3.load_volume_for_model(big, 28)
    assert v.shape == (28, 28, 28) and v.dtype == np.uint8 and v.max() > 200
    (r,) = C3.predict_files(out, [big])
    assert sum(r["probabilities"].values()) == pytest.approx(1.0)


def test_resize_volume_matches_trilinear_interpolate_when_growing():
    import tinygrad_rad.nn.functional as F

    x = np.random.default_rng(0).random((1, 1, 5, 7, 6)).astype(np.float32)
    want = F.interpolate(tr.tensor(x), size=(11, 9, 13), mode="trilinear", align_corners=False).numpy()[0, 0]
    np.testing.assert_allclose(C3.resize_volume(x[0, 0], (11, 9, 13)), want, rtol=1e-5, atol=1e-6)
    # shrinking averages areas: a 2x downsample is the mean of 2x2x2 blocks
    y = np.random.default_rng(1).random((8, 8, 8))
    np.testing.assert_allclose(C3.resize_volume(y, (4, 4, 4)), y.reshape(4, 2, 4, 2, 4, 2).mean((1, 3, 5)),
                               rtol=1e-5)


# ------------------------------------------------------------------------------------------- explain
def test_grad_cam3d_and_the_montage(run, tmp_path):
    data, out, arrays, _ = run
    model, _ = C3.load_trained(out)
    x = C3.preprocess3d(arrays["test_images"][:3])
    assert C3.find_target_layer3d(model, tr.tensor(x[:1])) == "features"
    cams, sal, logits, target = C3.grad_cam3d(model, x)
    assert cams.shape == sal.shape == (3, 28, 28, 28) and logits.shape == (3, 2)
    assert 0.0 <= cams.min() and cams.max() <= 1.0 and (target == logits.argmax(1)).all()
    # by hand: logits = fc(mean_v A) in eval mode: dy_c/dA_k = W[c, k] / V, cam = relu(sum_k W[c, k] A_k)
    with tr.no_grad():
        feats = model.forward_features(tr.tensor(x)).numpy().astype(np.float64)
    w = model.fc.weight.numpy().astype(np.float64)
    for c in (0, 1):
        got, _, _, _ = C3.grad_cam3d(model, x, target=c)
        low = np.maximum(np.einsum("k,nkdhw->ndhw", w[c], feats), 0.0)
        want = np.maximum(C3.resize_volume(low, (28, 28, 28)).astype(np.float64), 0.0)
        want = want / np.maximum(want.reshape(3, -1).max(1), 1e-30).reshape(3, 1, 1, 1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    r = C3.explain_checkpoint(out, tmp_path / "explain", data_dir=str(data), n=3, n_slices=6)
    png = tmp_path / "explain" / "gradcam_montage.png"
    assert r["png"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = C3.slice_montage(arrays["test_images"][r["rows"][0]["index"]][None], np.zeros((1, 28, 28, 28)), 6)
    assert img.shape == (2 + 2 * (84 + 2), 2 + 6 * (84 + 2), 3)
    saved = np.load(tmp_path / "explain" / "explanations.npz")
    assert saved["cams"].shape == (3, 28, 28, 28)
    rows = json.loads((tmp_path / "explain" / "explanations.json").read_text())["rows"]
    assert [row["index"] for row in rows] == list(saved["indices"])


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_train_evaluate_predict_explain(tmp_path, capsys):
    data = tmp_path / "data"
    arrays = _write_vessel3d(data, n=(16, 8, 8))
    out = tmp_path / "run"
    common = ["--data-dir", str(data), "--no-download", "--no-progress", "--no-plots"]
    assert main(["train", "--dataset", "vesselmnist3d", "--model", "tinycnn3d", "--epochs", "1",
                 "--batch-size", "8", "--out", str(out), *common]) == 0
    shown = json.loads(capsys.readouterr().out)
    stored = json.loads((out / "metrics.json").read_text())
    assert shown["test_auc"] == pytest.approx(stored["test_auc"])
    # the 3D recipe, with only the given options changed (not the 2D defaults: batch 128, smallcnn, ...)
    cfg = stored["config"]
    assert (cfg["batch_size"], cfg["model"], cfg["epochs"], cfg["eval_batch_size"]) == (8, "tinycnn3d", 1, 64)
    assert main(["evaluate", "--checkpoint", str(out), "--data-dir", str(data)]) == 0
    assert "AUC" in capsys.readouterr().out.upper()
    nii = _nifti(tmp_path / "scan.nii.gz", arrays["test_images"][0])
    dcm = _dicom_folder(tmp_path / "dcm", arrays["test_images"][1])
    assert main(["predict", "--checkpoint", str(out / "best.safetensors"), str(nii), str(dcm),
                 "--out", str(tmp_path / "pred")]) == 0
    text = capsys.readouterr().out
    assert "scan.nii.gz" in text and "-> " in text
    assert len(json.loads((tmp_path / "pred" / "predictions.json").read_text())) == 2
    assert main(["explain", "--checkpoint", str(out), "--data-dir", str(data), "--n", "2",
                 "--out", str(tmp_path / "ex")]) == 0
    assert (tmp_path / "ex" / "gradcam_montage.png").is_file()
    ex2 = tmp_path / "ex2"
    assert main(["explain", "--checkpoint", str(out), "--out", str(ex2), str(nii), str(dcm)]) == 0
    assert "2 volumes" in capsys.readouterr().out
    rows = json.loads((ex2 / "explanations.json").read_text())["rows"]
    assert [r["file"] for r in rows] == [str(nii), str(dcm)]
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-progress", "--no-plots"]) == 0
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]


@pytest.mark.parametrize("argv, needle", [
    (["train", "--dataset", "vesselmnist3d", "--size", "128"], "sizes 28, 64"),
    (["train", "--dataset", "vesselmnist3d", "--model", "resnet18"], "is a 2D model"),
    (["train", "--dataset", "vesselmnist3d", "--model", "nosuchnet"], "unknown model 'nosuchnet'"),
    (["train", "--dataset", "vesselmnist3d", "--no-download"], "vesselmnist3d.npz not found"),
])
def test_cli_train_errors_are_one_line(argv, needle, tmp_path, capsys):
    assert main([*argv, "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("tinygrad-rad train: error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if "--no-download" not in argv:  # refused before any work: no output folder
        assert not (tmp_path / "o").exists()


def test_cli_predict_evaluate_errors_are_one_line(run, tmp_path, capsys):
    data, out, _, _ = run
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["predict", "--checkpoint", str(out), str(tmp_path / "missing.nii.gz")], "does not exist"),
        (["predict", "--checkpoint", str(out), str(png)], "cannot read"),
        (["predict", "--checkpoint", str(out), str(empty)], str(empty)),
        (["evaluate", "--checkpoint", str(out), "--dataset", "pneumoniamnist", "--data-dir", str(data)],
         "not a MedMNIST 3D flag"),
        (["train", "--resume", str(out), "--lr", "0.1"], "--lr cannot change"),
        (["explain", "--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "e"),
          str(png)], "does not exist"),
        (["explain", "--checkpoint", str(out), "--out", str(tmp_path / "e"), str(png)], "cannot read"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_the_recipe_options_work_on_volumes_and_resume_exactly(tmp_path):
    """EMA + precise batch norm + mixup + label smoothing + balanced class weights on the 3D task."""
    data = tmp_path / "data"
    _write_vessel3d(data, n=(20, 8, 8))
    opts = dict(epochs=2, ema_epochs=1.0, precise_bn=12, mixup=0.2, label_smoothing=0.1,
                class_weight="balanced", train_subset=16)
    a = C3.fit(_cfg(data, tmp_path / "a", **opts), log=lambda s: None)

    def stop(event, info):
        return event == "step" and info["epoch"] == 1 and info["step"] == 1

    with pytest.raises(TrainingInterrupted):
        C3.fit(_cfg(data, tmp_path / "b", **opts), callbacks=[stop], log=lambda s: None)
    b = C3.fit(_cfg(data, tmp_path / "b", **opts), resume=True, log=lambda s: None)
    for name in ("last.safetensors", "best.safetensors"):
        wa = load_checkpoint(str(tmp_path / "a" / name))["model_state"]
        wb = load_checkpoint(str(tmp_path / "b" / name))["model_state"]
        for k in wa:
            np.testing.assert_array_equal(wa[k], wb[k], err_msg=f"{name} {k}")
    assert a["test_auc"] == b["test_auc"] and a["n_train"] == 16


def test_tta_on_volumes_is_the_mean_over_the_flips(tmp_path):
    data = tmp_path / "data"
    arrays = _write_vessel3d(data, n=(16, 8, 8))
    res = C3.fit(_cfg(data, tmp_path / "r", tta=True), log=lambda s: None)
    model, meta = C3.load_trained(tmp_path / "r")
    x = arrays["test_images"]
    views = [x] + [np.flip(x, 1 + a) for a in (0, 1, 2)]
    mean = np.mean([C3.predict_logits(model, np.ascontiguousarray(v)) for v in views], axis=0)
    np.testing.assert_allclose(C3.predict_logits(model, x, flip_axes=(0, 1, 2)), mean, rtol=1e-6, atol=1e-6)
    again = C3.evaluate_checkpoint(tmp_path / "r", data_dir=str(data))
    assert again["auc"] == pytest.approx(res["test_auc"])
