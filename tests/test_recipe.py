"""The recipe's pieces: weight averaging (optim.swa_utils vs PyTorch), precise batch norm, mixup, label
smoothing, the stratified subset, the flip rule, and exact resumption of a run that uses all of them."""

from __future__ import annotations

import numpy as np
import pytest
from test_train import make_medmnist_npz

import tinygrad_rad as tr
from tinygrad_rad import nn, optim
from tinygrad_rad.checkpoint import load_checkpoint
from tinygrad_rad.optim.swa_utils import (
    AveragedModel,
    get_ema_avg_fn,
    get_ema_multi_avg_fn,
    get_swa_avg_fn,
    update_bn,
)
from tinygrad_rad.tasks.classify import (
    FLIP_DATASETS,
    Split,
    TrainConfig,
    TrainingInterrupted,
    fit,
    load_trained,
    stratified_subset,
    uses_hflip,
)


def _net():
    tr.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 5 * 5, 3))


def _steps(model, n=4, seed=0):
    """n SGD steps on random data; returns the weights after each step."""
    opt = optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        x = tr.tensor(rng.standard_normal((6, 1, 5, 5)).astype(np.float32))
        loss = (model(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield [p.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["ema_multi", "ema", "swa"])
def test_averaged_model_is_the_running_average(kind):
    net = _net()
    fn = {"ema_multi": dict(multi_avg_fn=get_ema_multi_avg_fn(0.9)), "ema": dict(avg_fn=get_ema_avg_fn(0.9)),
          "swa": dict(avg_fn=get_swa_avg_fn())}[kind]
    avg = AveragedModel(net, **fn)
    assert all(not p.requires_grad for p in avg.module.parameters())
    expect = None
    for i, ws in enumerate(_steps(net)):
        avg.update_parameters(net)
        if expect is None:
            expect = [w.astype(np.float64) for w in ws]
        elif kind == "swa":
            expect = [e + (w - e) / (i + 1) for e, w in zip(expect, ws)]
        else:
            expect = [0.9 * e + 0.1 * w for e, w in zip(expect, ws)]
    assert int(avg.n_averaged.item()) == 4
    for e, p in zip(expect, avg.module.parameters()):
        np.testing.assert_allclose(p.numpy(), e, rtol=1e-5, atol=1e-6)
    # the average is a separate copy: training the model does not move it
    before = [p.numpy().copy() for p in avg.module.parameters()]
    list(_steps(net, 1, seed=5))
    for b, p in zip(before, avg.module.parameters()):
        np.testing.assert_array_equal(b, p.numpy())


def test_averaged_model_refuses_bad_arguments():
    net = _net()
    with pytest.raises(ValueError, match="not both"):
        AveragedModel(net, avg_fn=get_swa_avg_fn(), multi_avg_fn=get_ema_multi_avg_fn())
    with pytest.raises(ValueError, match="decay"):
        get_ema_multi_avg_fn(1.5)
    with pytest.raises(ValueError, match="pass the model"):
        AveragedModel(net).update_parameters(nn.Linear(2, 2))


def test_update_bn_gives_the_statistics_of_the_data():
    net = _net()
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((8, 1, 5, 5)).astype(np.float32) * 3 + 1 for _ in range(3)]
    net.eval()
    update_bn([tr.tensor(b) for b in batches], net)
    assert not net.training and net[1].momentum == 0.1  # mode and momentum restored
    # cumulative average of the per-batch statistics of conv(x)
    conv = net[0]
    outs = [conv(tr.tensor(b)).numpy().astype(np.float64) for b in batches]
    means = np.mean([o.mean(axis=(0, 2, 3)) for o in outs], axis=0)
    vars_ = np.mean([o.var(axis=(0, 2, 3), ddof=1) for o in outs], axis=0)
    np.testing.assert_allclose(net[1].running_mean.numpy(), means, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(net[1].running_var.numpy(), vars_, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("use_buffers", [True, False])
def test_swa_utils_match_pytorch(use_buffers):
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils as tsw

    net = _net()
    tnet = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(100, 3))
    with torch.no_grad():
        for tp, p in zip(tnet.parameters(), net.parameters()):
            tp.copy_(torch.from_numpy(p.numpy().copy()))
    avg = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.8), use_buffers=use_buffers)
    tavg = tsw.AveragedModel(tnet, multi_avg_fn=tsw.get_ema_multi_avg_fn(0.8), use_buffers=use_buffers)
    rng = np.random.default_rng(3)
    opt = optim.SGD(net.parameters(), lr=0.05)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.05)
    for _ in range(4):
        x = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
        loss = (net(tr.tensor(x)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = (tnet(torch.from_numpy(x)) ** 2).mean()
        topt.zero_grad()
        tloss.backward()
        topt.step()
        avg.update_parameters(net)
        tavg.update_parameters(tnet)
    ours, theirs = avg.state_dict(), tavg.state_dict()
    assert set(ours) == set(theirs)
    for k in ours:
        np.testing.assert_allclose(ours[k].numpy(), theirs[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    data = [rng.standard_normal((8, 1, 5, 5)).astype(np.float32) for _ in range(3)]
    update_bn([(tr.tensor(d), 0) for d in data], avg)
    tsw.update_bn([(torch.from_numpy(d), 0) for d in data], tavg)
    for k in ("module.1.running_mean", "module.1.running_var"):
        np.testing.assert_allclose(avg.state_dict()[k].numpy(), tavg.state_dict()[k].numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=k)


def test_stratified_subset_keeps_the_label_shares():
    labels = np.array([0] * 300 + [1] * 900 + [2] * 30).reshape(-1, 1)
    split = Split(np.arange(len(labels)), labels)
    sub = stratified_subset(split, 123, seed=0)
    counts = np.bincount(sub.labels[:, 0])
    assert len(sub.images) == 123 and list(counts) == [30, 90, 3]
    assert len(set(sub.images.tolist())) == 123  # no repeats
    np.testing.assert_array_equal(labels[sub.images], sub.labels)  # images keep their labels
    again = stratified_subset(split, 123, seed=0)
    np.testing.assert_array_equal(sub.images, again.images)  # seeded
    assert stratified_subset(split, None) is split and stratified_subset(split, 5000) is split
    tiny = stratified_subset(split, 3)
    assert sorted(tiny.labels[:, 0].tolist()) == [0, 1, 2]  # every label present when n allows
    with pytest.raises(ValueError, match="train_subset"):
        stratified_subset(split, 1)


def test_flip_rule_is_per_dataset_and_written_down():
    assert not uses_hflip(TrainConfig(dataset="pneumoniamnist"))  # chest: the heart is on the left
    assert not uses_hflip(TrainConfig(dataset="organamnist"))
    assert uses_hflip(TrainConfig(dataset="retinamnist")) and "retinamnist" in FLIP_DATASETS
    assert uses_hflip(TrainConfig(dataset="pneumoniamnist", hflip="yes"))
    assert not uses_hflip(TrainConfig(dataset="retinamnist", hflip="no"))
    with pytest.raises(ValueError, match="hflip"):
        uses_hflip(TrainConfig(hflip="maybe"))


RECIPE = dict(ema_epochs=1.0, precise_bn=20, mixup=0.2, label_smoothing=0.1, train_subset=30)


def test_a_run_with_every_recipe_option_resumes_exactly(tmp_path):
    make_medmnist_npz(tmp_path, n=(40, 16, 16))
    base = dict(data_dir=str(tmp_path), epochs=2, batch_size=8, progress=False, plots=False, **RECIPE)
    quiet = dict(log=lambda s: None)
    ref = fit(TrainConfig(out=str(tmp_path / "ref"), **base), **quiet)
    run = tmp_path / "run"

    def stop_mid_epoch_2(event, info):
        return event == "step" and info["epoch"] == 1 and info["step"] == 2

    with pytest.raises(TrainingInterrupted):
        fit(TrainConfig(out=str(run), **base), callbacks=[stop_mid_epoch_2], **quiet)
    res = fit(TrainConfig(out=str(run), progress=False), resume=True, **quiet)
    for name in ("last.safetensors", "best.safetensors"):
        a = load_checkpoint(tmp_path / "ref" / name)["model_state"]
        b = load_checkpoint(run / name)["model_state"]
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name} {k}")
    for k in ("test_auc", "test_acc", "test_loss", "best_epoch", "best_val_auc", "n_train"):
        assert res[k] == ref[k], k
    assert ref["n_train"] == 30


def test_best_checkpoint_holds_the_averaged_weights(tmp_path):
    make_medmnist_npz(tmp_path, n=(32, 16, 16))
    cfg = TrainConfig(data_dir=str(tmp_path), epochs=2, batch_size=8, progress=False, plots=False,
                      out=str(tmp_path / "r"), ema_epochs=2.0, precise_bn=16)
    res = fit(cfg, log=lambda s: None)
    model, meta = load_trained(tmp_path / "r")  # the best checkpoint loads like any other
    ema = AveragedModel(model)
    last = load_checkpoint(tmp_path / "r" / "last.safetensors", ema=ema)  # last: trained weights + average
    trained, averaged = last["model_state"], {k: v.numpy() for k, v in ema.module.state_dict().items()}
    assert averaged.keys() == trained.keys()
    assert any(not np.array_equal(averaged[k], trained[k]) for k in trained)  # two different weight sets
    assert int(ema.n_averaged.item()) == 8  # 2 epochs x 4 steps
    if res["best_epoch"] == 2:  # then the last epoch's average is what was validated and saved as best
        best = load_checkpoint(tmp_path / "r" / "best.safetensors")["model_state"]
        for k in best:
            np.testing.assert_array_equal(best[k], averaged[k], err_msg=k)
    with pytest.raises(Exception, match="no averaged"):
        load_checkpoint(tmp_path / "r" / "best.safetensors", ema=AveragedModel(model))


@pytest.mark.parametrize("field,value", [("label_smoothing", 1.0), ("mixup", -0.1), ("ema_epochs", -1.0),
                                         ("precise_bn", -5), ("mixup", float("nan"))])
def test_impossible_recipe_values_are_refused_by_name(tmp_path, field, value):
    make_medmnist_npz(tmp_path, n=(16, 8, 8))
    cfg = TrainConfig(data_dir=str(tmp_path), epochs=1, out=str(tmp_path / "r"), progress=False, plots=False,
                      **{field: value})
    with pytest.raises(ValueError, match=field):
        fit(cfg, log=lambda s: None)


def test_balanced_class_weights():
    from tinygrad_rad.tasks.classify import balanced_weights

    w = balanced_weights("multi-class", np.array([[0], [0], [0], [1], [2], [2]]), 4)
    np.testing.assert_allclose(w, [6 / 12, 6 / 4, 6 / 8, 1.0])  # n / (K n_k); an absent class gets 1
    assert balanced_weights("multi-label, binary-class", np.zeros((4, 3), int), 3) is None


def test_tta_views_and_their_use_in_evaluate(tmp_path):
    from tinygrad_rad.tasks.classify import evaluate, predict_logits, shift_images, tta_views

    img = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4) + 1
    down = shift_images(img, 1, 0)
    np.testing.assert_array_equal(down[:, 1:], img[:, :-1])
    assert (down[:, 0] == 0).all()
    left = shift_images(img, 0, -1)
    np.testing.assert_array_equal(left[:, :, :-1], img[:, :, 1:])
    assert (shift_images(img, 0, 9) == 0).all()
    edge = shift_images(img, 1, -1, "border")  # the uncovered row / column repeat the edge pixels
    np.testing.assert_array_equal(edge[:, 1:, :-1], img[:, :-1, 1:])
    np.testing.assert_array_equal(edge[:, 0, :-1], img[:, 0, 1:])
    np.testing.assert_array_equal(edge[:, 1:, -1], img[:, :-1, -1])
    assert len(tta_views(img)) == 5 and len(tta_views(img, flip=True)) == 6
    np.testing.assert_array_equal(tta_views(img, flip=True)[-1], img[:, :, ::-1])

    make_medmnist_npz(tmp_path, n=(24, 16, 16))
    cfg = TrainConfig(data_dir=str(tmp_path), epochs=1, batch_size=8, progress=False, plots=False,
                      out=str(tmp_path / "r"), tta=True)
    res = fit(cfg, log=lambda s: None)
    model, meta = load_trained(tmp_path / "r")
    data = np.load(tmp_path / "pneumoniamnist.npz")
    x, y = data["test_images"], data["test_labels"]
    # TTA = the mean of the views' logits; the run's test metrics are the TTA ones
    mean = np.mean([predict_logits(model, v) for v in tta_views(x)], axis=0)
    np.testing.assert_allclose(predict_logits(model, x, tta=True), mean, rtol=1e-6, atol=1e-6)
    assert evaluate(model, x, y, "binary-class", tta=True)["auc"] == pytest.approx(res["test_auc"])
    assert res["tta"] is True
    from tinygrad_rad.tasks.classify import evaluate_checkpoint

    again = evaluate_checkpoint(tmp_path / "r", data_dir=str(tmp_path))
    assert again["auc"] == pytest.approx(res["test_auc"])


def test_recipe_search_reads_only_validation_splits(tmp_path):
    """The search harness runs a candidate on every regime and records validation metrics only."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    make_medmnist_npz(tmp_path, "pneumoniamnist", n=(64, 32, 32))
    make_medmnist_npz(tmp_path, "retinamnist", n=(64, 32, 32))
    results = tmp_path / "search.jsonl"
    p = subprocess.run([sys.executable, "-m", "benchmarks.recipe_search", "--tiny", "--candidates",
                        "pbn_ls_tta", "--data-dir", str(tmp_path), "--out-root", str(tmp_path / "runs"),
                        "--results", str(results)], cwd=root, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    assert [r["regime"] for r in rows] == ["pneumonia", "retina", "pneumonia500"]
    for r in rows:
        assert 0.0 <= r["val_auc"] <= 1.0 and r["best_epoch"] == 1
        assert not any(k.startswith("test") for k in r), sorted(r)  # nothing measured on a test split
        assert r["overrides"]["tta"] is True and r["overrides"]["label_smoothing"] == 0.1
    assert "pbn_ls_tta" in p.stdout  # the summary table


def test_a_config_stored_before_the_recipe_fields_keeps_the_old_behaviour():
    old = TrainConfig().to_dict()
    for k in ("padding_mode", "precise_bn"):
        old.pop(k)
    cfg = TrainConfig.from_dict(old)
    assert cfg.padding_mode == "zeros" and cfg.precise_bn == 0  # as that run started
    now = TrainConfig()
    assert now.padding_mode == "border" and now.precise_bn == 2048  # today's defaults
    assert TrainConfig.from_dict(now.to_dict()) == now
