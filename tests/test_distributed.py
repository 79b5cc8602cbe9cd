"""tinygrad_rad.distributed: process group, DDP, DistributedSampler, SyncBatchNorm, metrics, launch.

Two kinds of tests:

* in-process (no MPI needed): the 1-process world, the sampler's shards, and the DDP reducer and
  SyncBatchNorm against a fake 2-rank group whose all-reduce doubles (two identical replicas);
* ``mpirun -n 2`` (one kernel thread per rank, skipped without mpi4py / mpirun): this file is also
  the worker (``python tests/test_distributed.py SCENARIO OUTDIR``), run by the tests below.

Tolerance of "2 processes = 1 process with the global batch": 1e-6 absolute + 1e-5 relative on the
weights after 6 SGD steps in float32 (the differences seen are <= 4e-8, a few float32 ulps). Not
bit-exact because the sums are grouped differently: the 1-process loss sums 16 per-sample terms in
one reduction, DDP sums 8 on each rank and then adds the two partial gradients in the all-reduce;
SyncBatchNorm adds per-rank float64 partial sums; and float32 addition is not associative (rounding
of the order of 1e-7 per op, amplified a little by the later steps). Quantities that do not depend
on a summation order are tested bit-exactly: the replicas equal each other after every step, and a
resumed run equals the uninterrupted one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinygrad_rad as tr
import tinygrad_rad.distributed as dist
from tinygrad_rad import nn, optim
from tinygrad_rad.data import DataLoader, TensorDataset
from tinygrad_rad.distributed import (
    DistributedDataLoader,
    DistributedDataParallel,
    DistributedSampler,
    ProcessGroup,
    SyncBatchNorm,
    Work,
)

N, B, W, SEED, STEPS, CKPT_STEP = 48, 8, 2, 3, 6, 4
ATOL, RTOL = 1e-6, 1e-5


# ------------------------------------------------------------------------ shared by the worker
def _dataset() -> TensorDataset:
    rng = np.random.default_rng(123)
    x = rng.standard_normal((N, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, N)
    return TensorDataset(x, y)


def _model(seed: int) -> nn.Module:
    tr.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3))


def _flat_params(model) -> dict:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _train(model, opt, loader, steps: int, on_step, ddp=None) -> None:
    import tinygrad_rad.nn.functional as F

    done = 0
    while done < steps:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            if ddp is not None:
                ddp.finish_gradient_synchronization()
            opt.step()
            done += 1
            on_step(done, loss, x.shape[0])
            if done == steps:
                return


# ----------------------------------------------------------------------------- worker (mpirun)
def _worker_reference(out: Path) -> None:
    """1 process, global batch B*W: weights after every step, gradients of step 1, final logits."""
    model = _model(0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(_dataset(), batch_size=B * W, shuffle=True, seed=SEED, prefetch=0)
    res, losses = {}, []

    def on_step(step, loss, n):
        losses.append(float(loss.item()))
        if step == 1:
            for i, p in enumerate(model.parameters()):
                res[f"grad1.{i}"] = p.grad.numpy().copy()

    _train(model, opt, loader, STEPS, on_step)
    for k, v in _flat_params(model).items():
        res[f"final.{k}"] = v
    model.eval()
    res["logits"] = model(tr.tensor(_dataset().arrays[0])).numpy()
    res["losses"] = np.array(losses)
    np.savez(out / "reference.npz", **res)


def _check_collectives(rank: int) -> None:
    """The process-group API on 2 real ranks (a failed assert aborts the job: the test sees it)."""
    t = tr.tensor([rank + 1.0, 10.0 * (rank + 1)])
    dist.all_reduce(t)
    assert t.tolist() == [3.0, 30.0]
    for op, want in ((dist.ReduceOp.AVG, 1.5), (dist.ReduceOp.MAX, 2.0), (dist.ReduceOp.MIN, 1.0),
                     (dist.ReduceOp.PRODUCT, 2.0)):
        a = np.array([rank + 1.0])
        dist.all_reduce(a, op=op)
        assert a[0] == want, (op, a)
    b = tr.tensor(np.full((2, 3), float(rank)))
    work = dist.broadcast(b, src=1, async_op=True)
    work.wait()
    assert work.is_completed() and (b.numpy() == 1.0).all()
    parts: list = []
    dist.all_gather(parts, np.arange(3) + 10 * rank)
    assert [p.tolist() for p in parts] == [[0, 1, 2], [10, 11, 12]]
    objs: list = []
    dist.all_gather_object(objs, {"rank": rank, "name": "é" * rank})
    assert objs == [{"rank": 0, "name": ""}, {"rank": 1, "name": "é"}]
    box = [{"seed": 42}] if rank == 0 else [None]
    dist.broadcast_object_list(box)
    assert box == [{"seed": 42}]
    rows = dist.gather_array(np.full((rank + 1, 2), rank))  # 1 row from rank 0, 2 from rank 1
    assert rows.tolist() == [[0, 0], [1, 1], [1, 1]]
    assert dist.reduce_scalar(rank, "max") == 1.0
    assert dist.reduce_dict({"b": rank, "a": 1.0}) == {"a": 1.0, "b": 0.5}
    dist.barrier()


def _worker_main(out: Path) -> None:
    from tinygrad_rad.checkpoint import save_checkpoint

    dist.init_process_group()
    rank = dist.get_rank()
    _check_collectives(rank)
    if rank == 0:  # the 1-process run, computed here so that it runs under the same settings
        _worker_reference(out)
    model = SyncBatchNorm.convert_sync_batchnorm(_model(0 if rank == 0 else 99))  # rank 1 starts different
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.001)  # tiny buckets: several, started in order
    opt = optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    loader = DistributedDataLoader(_dataset(), batch_size=B, seed=SEED, prefetch=0)
    res, history, replica_diff = {"buckets": np.array(ddp.comm_stats()["buckets"])}, [], []

    def on_step(step, loss, n):
        s, cnt = dist.reduce_sums([float(loss.item()) * n, n])
        if dist.is_main_process():
            history.append({"step": step, "loss": s / cnt, "samples": cnt})
        if step == 1:
            for i, p in enumerate(model.parameters()):
                got: list = []
                dist.all_gather(got, p.grad.data)
                res[f"grad1.{i}"] = got[0]
                replica_diff.append(float(np.abs(got[0] - got[1]).max()))
        flat = np.concatenate([p.numpy().reshape(-1) for p in model.parameters()])
        both: list = []
        dist.all_gather(both, flat)
        replica_diff.append(float(np.abs(both[0] - both[1]).max()))
        if step == CKPT_STEP and dist.is_main_process():
            save_checkpoint(out / "step4.safetensors", model, opt, epoch=loader.epoch,
                            extra={"loader": loader.state_dict()})
        dist.barrier()

    _train(ddp, opt, loader, STEPS, on_step, ddp)
    model.eval()
    shard = DistributedSampler(_dataset(), shuffle=False).indices()
    logits = model(tr.tensor(_dataset().arrays[0][shard])).numpy()
    res["logits"] = dist.gather_array(logits, interleave=True, total=N)
    if dist.is_main_process():  # NOTE: the only writes of the run
        for k, v in _flat_params(model).items():
            res[f"final.{k}"] = v
        res["replica_diff"] = np.array(replica_diff)
        np.savez(out / "ddp.npz", **res)
        (out / "history.json").write_text(json.dumps(history))
    dist.destroy_process_group()


def _worker_resume(out: Path) -> None:
    from tinygrad_rad.checkpoint import load_checkpoint

    dist.init_process_group()
    model = SyncBatchNorm.convert_sync_batchnorm(_model(7 + dist.get_rank()))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    info = load_checkpoint(out / "step4.safetensors", model, opt)
    ddp = DistributedDataParallel(model, bucket_cap_mb=0.001)
    loader = DistributedDataLoader(_dataset(), batch_size=B, seed=SEED, prefetch=0)
    loader.load_state_dict(info["extra"]["loader"])
    _train(ddp, opt, loader, STEPS - CKPT_STEP, lambda *a: None, ddp)
    if dist.is_main_process():
        np.savez(out / "resumed.npz", **{f"final.{k}": v for k, v in _flat_params(model).items()})


def _worker_fail(out: Path, how: str) -> None:
    import signal

    dist.init_process_group()
    ddp = DistributedDataParallel(_model(0))
    opt = optim.SGD(ddp.parameters(), lr=0.1)
    loader = DistributedDataLoader(_dataset(), batch_size=B, seed=SEED, prefetch=0)

    def on_step(step, loss, n):
        if step == 2 and dist.get_rank() == 1:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(300)  # "hang": a stuck rank

    _train(ddp, opt, loader, 100, on_step, ddp)
    print("FINISHED", flush=True)


# -------------------------------------------------------------------------------- launching
def _mpi_ok() -> bool:
    return dist.is_available() and dist.find_mpirun() is not None


needs_mpi = pytest.mark.skipif(not _mpi_ok(),
                               reason="needs mpi4py and mpirun (pip install 'tinygrad_rad[distributed]')")


def _mpirun(scenario: str, out: Path, timeout: float = 120, dist_timeout: float = 60):
    env = dict(os.environ, TGR_DIST_TIMEOUT=str(dist_timeout), TGR_BACKEND="reference")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    argv, env = dist.mpirun_command(W, [sys.executable, __file__, scenario, str(out)], threads_per_rank=1,
                                    env=env)
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory):
    """One `mpirun -n 2` training run (+ the 1-process reference on rank 0), then a resumed one."""
    out = tmp_path_factory.mktemp("dist")
    proc, _ = _mpirun("main", out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    resumed, _ = _mpirun("resume", out)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return out


def _load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@needs_mpi
def test_two_processes_train_the_one_process_model(mpi_run):
    ref, got = _load(mpi_run / "reference.npz"), _load(mpi_run / "ddp.npz")
    assert int(got["buckets"]) > 1
    finals = [k for k in ref if k.startswith("final.")]
    assert finals
    for k in finals:
        np.testing.assert_allclose(got[k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    moved = max(float(np.abs(ref[k] - _model(0).state_dict()[k[6:]].numpy()).max()) for k in finals)
    assert moved > 1e-2  # the run really trained (the comparison is not trivially true)
    history = json.loads((mpi_run / "history.json").read_text())
    np.testing.assert_allclose([h["loss"] for h in history], ref["losses"], rtol=1e-5, atol=1e-6)
    assert [h["samples"] for h in history] == [B * W] * STEPS


@needs_mpi
def test_gradients_equal_after_all_reduce(mpi_run):
    ref, got = _load(mpi_run / "reference.npz"), _load(mpi_run / "ddp.npz")
    for k in [k for k in ref if k.startswith("grad1.")]:
        np.testing.assert_allclose(got[k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    # both replicas hold the same all-reduced gradients and, after every step, the same weights
    assert float(got["replica_diff"].max()) == 0.0


@needs_mpi
def test_metrics_gathered_across_ranks(mpi_run):
    ref, got = _load(mpi_run / "reference.npz"), _load(mpi_run / "ddp.npz")
    assert got["logits"].shape == (N, 3)
    np.testing.assert_allclose(got["logits"], ref["logits"], rtol=RTOL, atol=1e-5)


@needs_mpi
def test_only_rank_zero_writes(mpi_run):
    names = sorted(p.name for p in mpi_run.iterdir())
    assert names == ["ddp.npz", "history.json", "reference.npz", "resumed.npz", "step4.safetensors"]


@needs_mpi
def test_resume_of_a_distributed_run(mpi_run):
    got, resumed = _load(mpi_run / "ddp.npz"), _load(mpi_run / "resumed.npz")
    for k in resumed:
        np.testing.assert_array_equal(resumed[k], got[k], err_msg=k)


@needs_mpi
@pytest.mark.parametrize("how", ["kill", "hang"])
def test_a_failed_rank_ends_the_run(tmp_path, how):
    proc, elapsed = _mpirun(how, tmp_path, timeout=90, dist_timeout=4)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-2000:]
    assert "FINISHED" not in text
    assert elapsed < 60
    if how == "hang":  # rank 0 times out in a collective, says so, and MPI_Abort ends rank 1
        assert "did not complete within 4 s" in text, text[-2000:]


@needs_mpi
def test_bench_distributed_tiny(tmp_path):
    env = dict(os.environ, TGR_BACKEND="reference")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "benchmarks.bench_distributed", "--tiny", "--out", str(tmp_path)]
    p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    res = json.loads((tmp_path / "distributed.json").read_text())
    configs = {r["config"]: r for r in res["results"]}
    assert res["tiny"] and "1x1" in configs and "2x1" in configs
    two = configs["2x1"]
    assert two["images_per_s"] > 0 and two["bytes_per_step"] > 0 and two["allreduce_alone_ms"] > 0
    assert 0.0 <= two["hidden"] <= 1.0


@needs_mpi
@pytest.mark.cudasim
def test_ddp_on_cuda_tensors_under_the_simulator(tmp_path):
    """benchmarks/gpu_distributed.py (the GPU check) on device "cuda" in Numba's CUDA simulator: the
    NCCL step skips (no CuPy), the 2-rank DDP + SyncBatchNorm run on "cuda" tensors must match."""
    if not tr.cuda.is_available():
        pytest.skip("no CUDA device and no CUDA simulator")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", TGR_BACKEND="cuda_plain")
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(root / "benchmarks" / "gpu_distributed.py"), "--device", "cuda", "--out",
           str(tmp_path)]
    p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0 and "OK   ddp" in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]


# ---------------------------------------------------------------------- in-process (no MPI)
def test_one_process_world_without_mpi():
    assert not dist.launched_by_mpi()
    dist.init_process_group()
    try:
        assert (dist.get_rank(), dist.get_world_size(), dist.is_initialized()) == (0, 1, True)
        t = tr.tensor([1.0, 2.0])
        dist.all_reduce(t, op=dist.ReduceOp.AVG)
        dist.broadcast(t, src=0)
        dist.barrier()
        assert t.tolist() == [1.0, 2.0]
        parts: list = []
        dist.all_gather(parts, t)
        assert len(parts) == 1 and parts[0].tolist() == [1.0, 2.0]
        box = [None]
        dist.broadcast_object_list(box)
        objs: list = []
        dist.all_gather_object(objs, {"a": 1})
        assert objs == [{"a": 1}]
        assert dist.reduce_scalar(3.5) == 3.5 and dist.reduce_sums([1, 2]) == [1.0, 2.0]
        model = _model(0)
        ddp = DistributedDataParallel(model)  # a pass-through
        x = tr.tensor(_dataset().arrays[0][:4])
        np.testing.assert_array_equal(ddp(x).numpy(), model(x).numpy())
        with pytest.raises(dist.DistributedError, match="already"):
            dist.init_process_group()
        with pytest.raises(ValueError, match="unknown reduce op"):
            dist.all_reduce(t, op="median")
    finally:
        dist.destroy_process_group()
    assert not dist.is_initialized() and dist.get_world_size() == 1
    with pytest.raises(dist.DistributedError, match="world_size=2"):
        dist.init_process_group(world_size=2)
    with pytest.raises(dist.DistributedError, match="init_process_group"):
        DistributedDataParallel(_model(0))


@pytest.mark.parametrize("n,w", [(48, 2), (10, 3), (7, 4), (2, 4), (5, 1)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_shards_cover_the_epoch(n, w, drop_last):
    ds = range(n)
    if drop_last and n < w:
        with pytest.raises(ValueError, match="drop_last"):
            DistributedSampler(ds, w, 0, drop_last=True)
        return
    shards = [DistributedSampler(ds, w, r, seed=5, drop_last=drop_last) for r in range(w)]
    for s in shards:
        s.set_epoch(2)
    got = np.concatenate([list(s) for s in shards])
    assert len({len(s) for s in shards}) == 1
    perm = np.random.default_rng([5, 2]).permutation(n)
    counts = np.bincount(got, minlength=n)
    if n % w == 0:
        assert (counts == 1).all()  # every sample exactly once per epoch
    elif drop_last:
        assert counts.sum() == n - n % w and counts.max() == 1
        assert (counts[perm[: n - n % w]] == 1).all()
    else:
        assert (counts >= 1).all() and counts.sum() == -(-n // w) * w  # padding repeats the first ones
    assert not np.array_equal(shards[0].indices(0), shards[0].indices(1)) or n <= w


def test_sampler_batches_are_the_one_process_global_batches():
    ds = _dataset()
    one = DataLoader(ds, batch_size=B * W, shuffle=True, seed=SEED, prefetch=0)
    ranks = [DistributedDataLoader(ds, batch_size=B, seed=SEED, prefetch=0, num_replicas=W, rank=r)
             for r in range(W)]
    assert len(one) == len(ranks[0]) == N // (B * W)
    for epoch in range(2):
        singles = [np.sort(y.numpy()) for _, y in one]
        per_rank = [[y.numpy() for _, y in ld] for ld in ranks]
        for b, ys in enumerate(singles):
            both = np.sort(np.concatenate([per_rank[r][b] for r in range(W)]))
            np.testing.assert_array_equal(both, ys)
        assert one.epoch == ranks[0].epoch == epoch + 1
    # the index sets themselves: rank r's batch b = positions b*B*W + r + W*j of the epoch order
    order = one.order(5)
    for r, ld in enumerate(ranks):
        idx = ld.order(5)
        for b in range(len(ld)):
            want = order[b * B * W + r : (b + 1) * B * W : W]
            np.testing.assert_array_equal(idx[b * B : (b + 1) * B], want)


def test_distributed_loader_resumes_mid_epoch():
    ds = _dataset()
    a = DistributedDataLoader(ds, batch_size=4, seed=1, prefetch=0, num_replicas=2, rank=1)
    full = [y.numpy() for _, y in a] + [y.numpy() for _, y in a]
    b = DistributedDataLoader(ds, batch_size=4, seed=1, prefetch=0, num_replicas=2, rank=1)
    it = iter(b)
    first = [next(it)[1].numpy() for _ in range(2)]
    state = b.state_dict()
    assert state["epoch"] == 0 and state["batch"] == 2 and state["global_batch"] == 8
    c = DistributedDataLoader(ds, batch_size=4, seed=99, prefetch=0, num_replicas=2, rank=1)
    c.load_state_dict(json.loads(json.dumps(state)))
    rest = [y.numpy() for _, y in c] + [y.numpy() for _, y in c]
    for x, y in zip(first + rest, full):
        np.testing.assert_array_equal(x, y)
    d = DistributedDataLoader(ds, batch_size=4, seed=1, prefetch=0, num_replicas=4, rank=0)
    with pytest.raises(dist.DistributedError, match="global batch"):
        d.load_state_dict(state)  # 4 ranks x 4 != 2 x 4 mid-epoch
    d.load_state_dict(dict(state, batch=0))  # an epoch boundary is fine


class FakeGroup(ProcessGroup):
    """Two identical replicas in one process: all-reduce(SUM) doubles; records the bucket order."""

    def __init__(self):
        super().__init__(None, None, 5.0)
        self.world_size, self.started = 2, []

    def dup(self):
        return self

    def start_all_reduce(self, buf, op="sum", what="all_reduce"):
        self.started.append(what)
        buf *= buf.dtype.type(2)
        if op == "avg":
            buf /= buf.dtype.type(2)
        return Work(self, None, what)

    def start_broadcast(self, buf, src=0, what="broadcast"):
        return Work(self, None, what)


def _grads(model) -> list:
    return [None if p.grad is None else p.grad.numpy().copy() for p in model.parameters()]


def test_ddp_buckets_overlap_backward_and_average():
    import tinygrad_rad.nn.functional as F

    ds = _dataset()
    x, y = tr.tensor(ds.arrays[0][:8]), tr.tensor(ds.arrays[1][:8])
    ref = _model(0)
    F.cross_entropy(ref(x), y).backward()
    g = FakeGroup()
    model = _model(0)
    ddp = DistributedDataParallel(model, process_group=g, bucket_cap_mb=0.0005)
    n_buckets = ddp.comm_stats()["buckets"]
    assert n_buckets >= 3
    started_during = []
    model[1].weight.register_post_accumulate_grad_hook(lambda p: started_during.append(len(g.started)))
    F.cross_entropy(ddp(x), y).backward()
    # the Linear layer's buckets were already reducing when the batch norm's gradient arrived
    assert 0 < started_during[0] < n_buckets
    assert len(g.started) == n_buckets and ddp.comm_stats()["steps"] == 1
    for a, b in zip(_grads(model), _grads(ref)):
        np.testing.assert_array_equal(a, b)  # (2 g) / 2 == g exactly
    ddp.finish_gradient_synchronization()  # a no-op: backward already finished it
    assert len(g.started) == n_buckets
    with ddp.no_sync():  # accumulate locally: no communication
        F.cross_entropy(ddp(x), y).backward()
    assert len(g.started) == n_buckets
    for a, b in zip(_grads(model), _grads(ref)):
        np.testing.assert_allclose(a, 2 * b, rtol=1e-6, atol=1e-7)


def test_ddp_unused_parameters():
    import tinygrad_rad.nn.functional as F

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 2), nn.Linear(4, 2)

        def forward(self, x):
            return self.a(x)

    x, y = tr.randn(3, 4), tr.tensor(np.array([0, 1, 0]))
    g = FakeGroup()
    ddp = DistributedDataParallel(TwoHeads(), process_group=g, bucket_cap_mb=1e-5)
    F.cross_entropy(ddp(x), y).backward()
    with pytest.raises(dist.DistributedError, match="find_unused_parameters"):
        ddp(x)  # the b head's bucket never completed and nobody finished it
    ddp.finish_gradient_synchronization()
    assert ddp.module.b.weight.grad is not None and not ddp.module.b.weight.grad.numpy().any()
    g2 = FakeGroup()
    ddp2 = DistributedDataParallel(TwoHeads(), process_group=g2, bucket_cap_mb=1e-5,
                                   find_unused_parameters=True)
    for _ in range(2):
        F.cross_entropy(ddp2(x), y).backward()
        assert ddp2.comm_stats()["steps"] >= 1 and ddp2._reducer.state == "done"


def test_sync_batchnorm_equals_batchnorm_over_the_global_batch():
    # two identical replicas (fake group): the global batch is this batch twice, whose statistics
    # are this batch's, so SyncBatchNorm must reproduce BatchNorm2d, forward and backward
    rng = np.random.default_rng(0)
    xv = (rng.standard_normal((4, 3, 5, 5)) * 2 + 3).astype(np.float32)
    gy = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    bn = nn.BatchNorm2d(3)
    sync = SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)))[0]
    sync.process_group = FakeGroup()
    assert isinstance(sync, SyncBatchNorm)
    outs = []
    for m in (bn, sync):
        m.weight.data = np.array([1.5, -0.5, 2.0], np.float32)
        x = tr.tensor(xv, requires_grad=True)
        y = m(x)
        y.backward(tr.tensor(gy))
        outs.append((y.numpy(), x.grad.numpy(), m.weight.grad.numpy(), m.bias.grad.numpy(),
                     m.running_mean.numpy()))
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    M = 2 * xv.size // 3  # the running variance is unbiased with the global count (both replicas)
    var = xv.transpose(1, 0, 2, 3).reshape(3, -1).astype(np.float64).var(axis=1)
    np.testing.assert_allclose(sync.running_var.numpy(), 0.9 + 0.1 * var * M / (M - 1), rtol=1e-5)
    bn.running_var.data = sync.running_var.numpy().copy()
    sync.eval()  # eval: plain batch norm with the running statistics
    np.testing.assert_allclose(sync(tr.tensor(xv)).numpy(), bn.eval()(tr.tensor(xv)).numpy(), rtol=1e-6)


def test_convert_sync_batchnorm_keeps_parameters_and_order():
    model = _model(0)
    before = [id(p) for p in model.parameters()]
    keys = list(model.state_dict())
    model = SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(model[1], SyncBatchNorm)
    assert [id(p) for p in model.parameters()] == before and list(model.state_dict()) == keys


def test_shard_loader_keeps_the_global_batch():
    ds = _dataset()
    one = DataLoader(ds, batch_size=B * W, shuffle=True, seed=SEED, prefetch=0)
    assert dist.shard_loader(one) is one  # 1-process world
    one.set_epoch(1)
    part = dist.shard_loader(one, FakeGroup())
    assert isinstance(part, DistributedDataLoader) and part.batch_size == B and len(part) == len(one)
    assert part.epoch == 1 and part.seed == SEED and part.sampler.rank == 0
    np.testing.assert_array_equal(part.order(1), one.order(1)[0::W])
    with pytest.raises(dist.DistributedError, match="not divisible"):
        dist.shard_loader(DataLoader(ds, batch_size=5), FakeGroup())


def test_gather_array_and_reduce_with_fake_group():
    g = FakeGroup()
    assert dist.reduce_sums([1.0, 3.0], group=g) == [2.0, 6.0]
    assert dist.reduce_scalar(tr.tensor(2.0), "mean", group=g) == 2.0


def test_launch_command_and_missing_mpi_message(monkeypatch):
    if dist.find_mpirun() is not None:
        argv, env = dist.mpirun_command(3, ["python", "train.py"], threads_per_rank=2)
        assert argv[1:3] == ["-n", "3"] and argv[-2:] == [sys.executable, "train.py"]
        assert env["NUMBA_NUM_THREADS"] == "2" and env["OMP_NUM_THREADS"] == "2"
        with pytest.raises(FileNotFoundError, match="hostfile"):
            dist.mpirun_command(2, ["x.py"], hostfile="/nonexistent/hosts")
    import tinygrad_rad.distributed.launcher as launch

    monkeypatch.setattr(launch, "is_available", lambda: False)
    with pytest.raises(dist.DistributedError, match=r"pip install 'tinygrad_rad\[distributed\]'"):
        launch.require_mpi()


def test_nccl_helpers_without_a_gpu():
    from types import SimpleNamespace

    from tinygrad_rad.distributed import nccl

    fake = SimpleNamespace(NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0, NCCL_MAX=2)
    assert nccl.nccl_dtype(fake, np.dtype(np.float32)) == 7 and nccl.nccl_op(fake, "avg") == 0
    with pytest.raises(TypeError, match="NCCL cannot reduce"):
        nccl.nccl_dtype(fake, np.dtype(np.complex64))
    for uid in (b"\x00\xff" * 64, tuple(range(-5, 5))):
        assert nccl._decode_uid(json.loads(json.dumps(nccl._encode_uid(uid)))) == uid


if __name__ == "__main__":  # the mpirun worker: python tests/test_distributed.py SCENARIO OUTDIR
    scenario, outdir = sys.argv[1], Path(sys.argv[2])
    {"main": _worker_main, "resume": _worker_resume,
     "kill": lambda o: _worker_fail(o, "kill"), "hang": lambda o: _worker_fail(o, "hang")}[scenario](outdir)
