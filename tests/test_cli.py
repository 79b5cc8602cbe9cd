"""The ``tinygrad-rad`` command end to end on a tiny synthetic MedMNIST file: train, evaluate, predict,
explain, Ctrl-C and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_rad import cli
from tinygrad_rad.checkpoint import load_checkpoint
from tinygrad_rad.tasks.classify import load_trained, predict

ROOT = Path(__file__).resolve().parents[1]


def _npz(folder: Path, n=(96, 32, 32), seed=0) -> Path:
    """pneumoniamnist-format file: label 1 images carry a bright square."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, m in zip(("train", "val", "test"), n):
        y = (np.arange(m) % 2).reshape(-1, 1).astype(np.uint8)
        rng.shuffle(y)
        x = rng.integers(0, 100, (m, 28, 28)).astype(np.int64)
        x[y[:, 0] == 1, 9:19, 9:19] += 120
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x.astype(np.uint8), y
    path = folder / "pneumoniamnist.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    _npz(d)
    out = d / "run"
    rc = cli.main(["train", "--data-dir", str(d), "--limit-train", "64", "--epochs", "1", "--model",
                   "smallcnn", "--batch-size", "32", "--out", str(out), "--no-progress"])
    assert rc == 0
    return d, out


def test_train_writes_checkpoints_metrics_history_and_plots(trained):
    d, out = trained
    for name in ("best.safetensors", "last.safetensors", "metrics.json", "history.csv", "curves.png",
                 "roc.png", "confusion_matrix.png"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    for k in ("test_auc", "test_acc", "test_sensitivity", "test_specificity", "best_epoch", "epochs",
              "train_seconds", "images_per_second", "config", "version"):
        assert k in m, k
    assert m["epochs"] == 1 and m["best_epoch"] == 1 and m["n_train"] == 64 and m["n_test"] == 32
    assert m["config"]["model"] == "smallcnn" and m["config"]["limit_train"] == 64
    assert 0 <= m["test_auc"] <= 1 and m["images_per_second"] > 0
    assert sum(map(sum, m["test_confusion_matrix"])) == 32
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")


def test_evaluate_reproduces_the_test_metrics(trained, capsys):
    d, out = trained
    js = out / "eval.json"
    rc = cli.main(["evaluate", "--checkpoint", str(out / "best.safetensors"), "--data-dir", str(d),
                   "--split", "test", "--json", str(js)])
    assert rc == 0
    assert "auc" in capsys.readouterr().out
    e = json.loads(js.read_text())
    m = json.loads((out / "metrics.json").read_text())
    assert e["n"] == 32
    assert e["auc"] == pytest.approx(m["test_auc"]) and e["acc"] == pytest.approx(m["test_acc"])
    assert e["confusion_matrix"] == m["test_confusion_matrix"]


def test_predict_png_matches_the_array_path_and_reads_dicom(trained, tmp_path, capsys):
    pil = pytest.importorskip("PIL.Image")
    d, out = trained
    img = np.load(d / "pneumoniamnist.npz")["test_images"][3]
    png = tmp_path / "x.png"
    pil.fromarray(img).save(png)
    js = tmp_path / "pred.json"
    pydicom_data = pytest.importorskip("pydicom.data")
    dcm = pydicom_data.get_testdata_file("CT_small.dcm")
    ck = str(out / "best.safetensors")
    assert cli.main(["predict", "--checkpoint", ck, "--json", str(js), str(png), dcm]) == 0
    printed = capsys.readouterr().out
    assert "x.png" in printed and "CT_small.dcm" in printed
    res = json.loads(js.read_text())
    model, meta = load_trained(out / "best.safetensors")
    want = predict(model, img[None], meta["task"])[0]
    got = res[0]["probabilities"]
    np.testing.assert_allclose([got["normal"], got["pneumonia"]], want, rtol=1e-6)
    p_dcm = res[1]["probabilities"]
    assert sum(p_dcm.values()) == pytest.approx(1.0) and res[1]["prediction"] in ("normal", "pneumonia")


def test_explain_writes_grid_and_maps(trained, tmp_path):
    d, out = trained
    rc = cli.main(["explain", "--checkpoint", str(out / "best.safetensors"), "--data-dir", str(d), "--n", "6",
                   "--out", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "gradcam.png").stat().st_size > 1000
    z = np.load(tmp_path / "explanations.npz")
    assert z["cams"].shape == (6, 28, 28) and z["saliency"].shape == (6, 28, 28)
    assert 0 <= z["cams"].min() and z["cams"].max() <= 1 + 1e-6
    assert len(set(z["indices"].tolist())) == 6


def test_clear_errors(tmp_path, capsys):
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert cli.main(["train", "--dataset", "nosuchmnist", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "nosuchmnist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--epochs", "0"])


def test_sigint_saves_last_checkpoint_and_resume_finishes(tmp_path):
    _npz(tmp_path, n=(32, 16, 16))
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "tinygrad_rad", "train", "--data-dir", str(tmp_path), "--epochs", "4",
           "--batch-size", "16", "--out", str(out), "--no-progress", "--no-plots"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "last.safetensors").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "resume with: tinygrad-rad train --resume" in err
    ck = load_checkpoint(out / "last.safetensors")
    assert 1 <= ck["epoch"] < 4
    assert not (out / "metrics.json").exists()
    rc = cli.main(["train", "--resume", str(out), "--no-progress"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 4 and len((out / "history.csv").read_text().splitlines()) == 5


def test_segment_and_detect_are_registered(capsys):
    text = cli.build_parser().format_help()
    for name in ("segment", "detect"):
        assert name in text
        with pytest.raises(SystemExit) as e:  # needs its own sub-command
            cli.main([name])
        assert e.value.code == 2


# ------------------------------------------------------------- expected errors: one line, exit 2
TINY = ["--limit-train", "32", "--limit-eval", "16", "--epochs", "1", "--batch-size", "16", "--no-progress",
        "--no-plots"]


def _one_line_error(capsys, *needles, err=None):
    """stderr ends with exactly one error line (after any progress log), with no traceback."""
    err = (capsys.readouterr().err if err is None else err).strip()
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert "Traceback" not in err and len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    for n in needles:
        assert n in errors[0], (n, err)
    return errors[0]


def test_device_cuda_without_a_gpu_is_one_line(tmp_path):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONUNBUFFERED": "1"}

    def run(*argv):
        p = subprocess.run([sys.executable, "-m", "tinygrad_rad", *argv], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
        return p.returncode, p.stderr

    rc, err = run("evaluate", "--checkpoint", str(tmp_path / "missing.safetensors"), "--device", "cuda")
    if "not available" not in err:
        pytest.skip("a CUDA device is available here")
    assert rc == 2
    _one_line_error(None, "--device cuda", "device 'cuda' is not available", err=err)
    rc, err = run("segment", "train", "--device", "cuda", "--out", str(tmp_path / "s"))
    assert rc == 2
    _one_line_error(None, "tinygrad-rad segment train: error: --device cuda", err=err)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("argv, needle", [
    (["train", "--lr", "nan"], "--lr: expected a finite number, got nan"),
    (["train", "--lr", "inf"], "--lr: expected a finite number"),
    (["segment", "train", "--epochs", "0"], "--epochs: expected a positive integer, got 0"),
    (["detect", "train", "--epochs", "-1"], "--epochs"),
])
def test_bad_numbers_are_refused_up_front(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    _one_line_error(capsys, needle)


def test_a_loss_that_becomes_non_finite_stops_the_run_with_a_message(tmp_path, capsys):
    _npz(tmp_path, n=(32, 16, 16))
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(tmp_path), "--out", str(out), "--lr", "1e30", *TINY]) == 2
    err = _one_line_error(capsys, "training loss became", "epoch 1, step", "lower --lr")
    assert "nan" in err or "inf" in err
    assert not (out / "metrics.json").exists() and not (out / "last.safetensors").exists()


@pytest.mark.parametrize("kind", ["oserror", "safetensors"])
def test_a_full_disk_is_one_line(tmp_path, capsys, monkeypatch, kind):
    import errno

    from tinygrad_rad.tasks import loop

    class SafetensorError(Exception):  # what safetensors raises (matched by name)
        pass

    def full(*a, **k):
        if kind == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              "\"No space left on device\" })")

    monkeypatch.setattr(loop, "save_checkpoint", full)
    _npz(tmp_path, n=(32, 16, 16))
    assert cli.main(["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), *TINY]) == 2
    _one_line_error(capsys, "no space left on device")


def test_an_empty_split_is_refused_before_training(tmp_path, capsys):
    _npz(tmp_path, n=(32, 16, 0))
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(tmp_path), "--out", str(out), *TINY]) == 2
    _one_line_error(capsys, "test", "empty")
    assert not (out / "last.safetensors").exists()


def test_resume_applies_epochs_and_refuses_what_cannot_change(tmp_path, capsys):
    _npz(tmp_path, n=(32, 16, 16))
    out = tmp_path / "run"
    assert cli.main(["train", "--data-dir", str(tmp_path), "--out", str(out), *TINY]) == 0
    assert cli.main(["train", "--resume", str(out), "--epochs", "2", "--lr", "0.5",
                     "--model", "resnet18"]) == 2
    _one_line_error(capsys, "--lr", "--model", "cannot change")
    assert load_checkpoint(out / "last.safetensors")["epoch"] == 1
    assert cli.main(["train", "--resume", str(out), "--epochs", "2", "--no-progress",
                     "--num-threads", "1"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == 2 and len((out / "history.csv").read_text().splitlines()) == 3
    assert m["config"]["lr"] == 1e-3 and m["config"]["limit_train"] == 32


def test_detect_anomaly_names_the_op_that_made_a_bad_gradient(tmp_path, capsys, monkeypatch):
    from tinygrad_rad.tasks import classify

    # a loss that is finite (0) but whose backward is inf: d sqrt(u) / du at u = 0
    monkeypatch.setattr(classify, "loss_fn", lambda task, logits, y, *rest: (logits * 0.0).sqrt().sum())
    _npz(tmp_path, n=(32, 16, 16))
    argv = ["train", "--data-dir", str(tmp_path), *TINY]
    assert cli.main([*argv, "--out", str(tmp_path / "a"), "--detect-anomaly"]) == 2
    _one_line_error(capsys, "--detect-anomaly", "Function 'Sqrt' returned inf")
    # without it, the bad gradient poisons the weights and the next loss stops the run
    assert cli.main([*argv, "--out", str(tmp_path / "b")]) == 2
    _one_line_error(capsys, "training loss became nan at epoch 1, step 2")


def test_a_checkpoint_with_a_malformed_config_field_is_one_line(trained, tmp_path, capsys):
    from tinygrad_rad.checkpoint import save_checkpoint
    from tinygrad_rad.tasks.classify import load_trained

    _, out = trained
    model, meta = load_trained(out / "best.safetensors")
    ck = load_checkpoint(out / "best.safetensors")
    bad = tmp_path / "bad.safetensors"
    save_checkpoint(bad, model, config={**ck["config"], "size": "big"}, extra=ck["extra"])
    assert cli.main(["evaluate", "--checkpoint", str(bad)]) == 2
    _one_line_error(capsys, str(bad), "'size'")
    (tmp_path / "run").mkdir()
    bad.rename(tmp_path / "run" / "last.safetensors")
    assert cli.main(["train", "--resume", str(tmp_path / "run")]) == 2
    _one_line_error(capsys, "last.safetensors", "'size'")
