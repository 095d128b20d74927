"""labelup.engine: schedule, checkpoints (weights_only), exact kill-and-resume, and a 2-process torchrun (gloo) run."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from dataclasses import replace
import pytest
import torch
from torch import nn

DEMO = str(Path(__file__).with_name("ddp_demo.py"))  # a tiny training run, started by torchrun

from labelup.engine import (rank_batch_size, TrainConfig, latest_checkpoint, list_checkpoints, load_checkpoint, sharded_indices,
                            train_loop, warmup_linear)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 1))


def _batch(step, rng):
    x = torch.from_numpy(rng.normal(size=(8, 3)).astype(np.float32))
    return {"x": x, "y": x.sum(1, keepdim=True)}


def _loss(model, b):
    loss = nn.functional.mse_loss(model(b["x"]), b["y"])
    return loss, {"mse": loss.detach()}


def test_schedule():
    assert warmup_linear(0, 10, 100, 1.0) == pytest.approx(0.1)
    assert warmup_linear(9, 10, 100, 1.0) == pytest.approx(1.0)
    assert warmup_linear(99, 10, 100, 1.0, 1e-7) == pytest.approx(1e-7)
    lrs = [warmup_linear(s, 10, 100, 1.0) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_sharding_disjoint():
    a = sharded_indices(12, 0, 6, rank=0, world_size=2)
    b = sharded_indices(12, 0, 6, rank=1, world_size=2)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(12))


def test_tiny_training_and_checkpoint(tmp_path):
    cfg = TrainConfig(iterations=6, lr=1e-2, warmup=2, ckpt_every=3, seed=0)
    m = train_loop(_model(), _batch, _loss, cfg, tmp_path, device="cpu", progress=False)
    ck = torch.load(latest_checkpoint(tmp_path / "ckpt"), weights_only=True)
    assert ck["step"] == 6
    for k, v in m.state_dict().items():
        assert torch.equal(ck["model"][k], v)
    from labelup.engine import get_rng_state
    live = get_rng_state()                                       # the checkpoint holds the random state after step 6
    assert torch.equal(ck["rng"][0]["torch"], live["torch"]) and torch.equal(ck["rng"][0]["numpy"], live["numpy"])
    assert ck["scheduler"]["last_epoch"] == 6
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].split(",")[:4] == ["step", "loss", "lr", "seconds"] and "mse" in log[0] and len(log) == 7


def test_kill_and_resume_is_exact(tmp_path):
    cfg = TrainConfig(iterations=20, lr=1e-2, warmup=3, ckpt_every=5, seed=4)
    full = train_loop(_model(), _batch, _loss, cfg, tmp_path / "full", device="cpu", progress=False)
    train_loop(_model(), _batch, _loss, cfg, tmp_path / "cut", device="cpu", progress=False, stop_after=12)
    (tmp_path / "cut" / "ckpt" / "step_0000012.pt").unlink()  # killed after the step-10 checkpoint
    assert latest_checkpoint(tmp_path / "cut" / "ckpt").name == "step_0000010.pt"
    res = train_loop(_model(7), _batch, _loss, cfg, tmp_path / "cut", device="cpu", progress=False)
    for k, v in full.state_dict().items():
        assert torch.equal(v, res.state_dict()[k]), k
    # without resume the run starts over (and would differ from a resumed model with another init)
    assert [p.name for p in list_checkpoints(tmp_path / "cut" / "ckpt")] == ["step_0000015.pt", "step_0000020.pt"]


def _torchrun(out, its, stop=None, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
           sys.executable, DEMO, str(out), str(its)]
    if stop is not None:
        cmd.append(str(stop))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]


@pytest.fixture(scope="module")
def ddp_full(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_full")
    _torchrun(out, 10)
    return out


def test_workers_give_the_same_training(tmp_path):
    "Batches built ahead in DataLoader workers are the batches the loop would build itself: same weights, same log."
    cfg = TrainConfig(iterations=8, lr=1e-2, warmup=2, ckpt_every=4, seed=3)
    a = train_loop(_model(), _batch, _loss, cfg, tmp_path / "a", device="cpu", progress=False)
    b = train_loop(_model(), _batch, _loss, replace(cfg, num_workers=2), tmp_path / "b", device="cpu", progress=False)
    for k, v in a.state_dict().items(): assert torch.equal(v, b.state_dict()[k]), k
    la, lb = [pd.read_csv(tmp_path / d / "log.csv") for d in "ab"]
    assert la.loss.tolist() == lb.loss.tolist() and set(la.batch) == {8}


def test_global_batch_is_one_meaning(tmp_path):
    "batch_size is the global batch: 1 process and 2 processes train on batches of the same size (log.csv)."
    from labelup.core import UsageError
    assert rank_batch_size(32, 4) == 8
    with pytest.raises(UsageError, match="does not split over 3 processes"): rank_batch_size(32, 3)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, DEMO, str(tmp_path / "one"), "4"], env=env, check=True, timeout=120)
    _torchrun(tmp_path / "two", 4)
    one, two = pd.read_csv(tmp_path / "one" / "log.csv"), pd.read_csv(tmp_path / "two" / "log.csv")
    assert set(one.batch) == set(two.batch) == {8}


def test_torchrun_two_processes(ddp_full):
    f0, f1 = [load_checkpoint(ddp_full / f"final_rank{r}.pt") for r in (0, 1)]
    assert f0["world_size"] == 2 and torch.equal(f0["params"], f1["params"])
    ck = load_checkpoint(latest_checkpoint(ddp_full / "ckpt"))
    assert ck["step"] == 10 and ck["world_size"] == 2 and len(ck["rng"]) == 2


def test_torchrun_resume(ddp_full, tmp_path):
    _torchrun(tmp_path, 10, stop=7)
    (tmp_path / "ckpt" / "step_0000007.pt").unlink()
    _torchrun(tmp_path, 10)
    a = load_checkpoint(ddp_full / "final_rank0.pt")["params"]
    b = load_checkpoint(tmp_path / "final_rank0.pt")["params"]
    assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_sigkill_and_resume(tmp_path):
    "A real kill (SIGKILL mid-run, possibly mid-checkpoint-write), then a resume, gives the uninterrupted weights."
    import time
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, DEMO, str(tmp_path / "full"), "30"], env=env, check=True, timeout=120)
    p = subprocess.Popen([sys.executable, DEMO, str(tmp_path / "cut"), "30"],
                         env={**env, "LABELUP_DEMO_SLEEP": "0.1"})
    t0 = time.time()
    while not (tmp_path / "cut" / "ckpt" / "step_0000010.pt").exists():
        assert p.poll() is None, "demo run ended before its step-10 checkpoint"
        assert time.time() - t0 < 900, "demo run hung"                 # a hang guard, not a speed claim
        time.sleep(0.05)
    p.kill(); p.wait()
    assert not (tmp_path / "cut" / "final_rank0.pt").exists()
    assert latest_checkpoint(tmp_path / "cut" / "ckpt").name < "step_0000030.pt"
    subprocess.run([sys.executable, DEMO, str(tmp_path / "cut"), "30"], env=env, check=True, timeout=120)
    a = load_checkpoint(tmp_path / "full" / "final_rank0.pt")["params"]
    b = load_checkpoint(tmp_path / "cut" / "final_rank0.pt")["params"]
    assert torch.equal(a, b)


def test_full_disk_names_the_checkpoint(tmp_path, monkeypatch):
    "A write that fails half-way (torch reports a full disk as `basic_ios::clear`) names the file and leaves nothing."
    from labelup.engine import save_checkpoint
    def full(obj, f, *a, **k):
        open(f, "wb").write(b"half"); raise RuntimeError("[enforce fail at inline_container.cc] . PytorchStreamWriter failed writing file: basic_ios::clear: iostream error")
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=r"model\.pt: could not write the checkpoint .* MiB free"):
        save_checkpoint(tmp_path / "model.pt", {"w": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []
