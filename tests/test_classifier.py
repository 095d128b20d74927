"""labelup.classifier: model, loss, augmentation, training (resume, checkpoints), CLI, 2-process torchrun."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from labelup.cli import cli_score, cli_train_classifier
from labelup.settings import classifier_of

from labelup.core import get_profile
from labelup.classifier import (Augment, SliceBank, build_classifier, class_balance,
                                fit_classifier, focal_loss, load_classifier, save_classifier, slice_metrics,
                                score_study)

TINY = ["classifier.backbone=test_efficientnet", "classifier.iterations=6", "classifier.batch_size=4",
        "classifier.warmup=2", "classifier.ckpt_every=3"]


def _toy(rng, n=16, size=48, positive=True):
    vol = rng.normal(40, 15, (n, size, size))
    vol[:, 10:20, 10:20] += 300
    lab = np.zeros(n, np.int8)
    if positive:
        vol[5:9, 13:17, 13:17] = 30
        lab[5:9] = 1
    lab[0] = -1  # one unlabelled slice
    return vol.astype(np.int16), lab


@pytest.fixture(scope="module")
def bank():
    p = get_profile("smoke", TINY)
    rng = np.random.default_rng(0)
    studies = [_toy(rng, positive=i % 2 == 0) for i in range(4)]
    return SliceBank([classifier_of(p).preprocess(v) for v, _ in studies], [l for _, l in studies])


def test_model_contract():
    p = get_profile("smoke", TINY)
    m = build_classifier(p.classifier, p.data.context)
    assert m(torch.rand(2, 7, 64, 64)).shape == (2,)
    assert m.net.global_pool.pool_type == "max"
    assert get_profile("paper").classifier.backbone == "tf_efficientnetv2_l"


def test_bank_balance(bank):
    b = class_balance(bank)
    assert b == {"studies": 4, "positive_studies": 2, "slices": 60, "positive_slices": 8, "negative_slices": 52,
                 "positive_fraction": 8 / 60}
    _, y = bank.sample(np.random.default_rng(1), 500, balanced=True)
    assert 0.42 < y.mean() < 0.58


def test_focal_loss_soft_targets():
    l = torch.tensor([0.0, 2.0]); t = torch.tensor([0.5, 0.5])
    assert torch.isfinite(focal_loss(l, t)) and focal_loss(l, t) > 0


def test_augment_paper_cutout():
    p = get_profile("paper")
    a = Augment(classifier_of(p))
    assert a.cutout_args == dict(holes=1, max_holes=2, spatial_size=(40, 40, -1), max_spatial_size=(200, 200, -1),
                                 prob=0.4, fill_value=0)


def test_train_resume_roundtrip(bank, tmp_path):
    p = get_profile("smoke", TINY)
    a = fit_classifier(bank, tmp_path / "a", classifier_of(p), device="cpu", progress=False)
    fit_classifier(bank, tmp_path / "b", classifier_of(p), device="cpu", progress=False, stop_after=4)
    (tmp_path / "b" / "ckpt" / "step_0000004.pt").unlink()  # killed after the step-3 checkpoint
    b = fit_classifier(bank, tmp_path / "b", classifier_of(p), device="cpu", progress=False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    save_classifier(tmp_path / "model.pt", a, p, {"x": 1})
    ck = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ck["meta"] == {"x": 1}
    m, p2 = load_classifier(tmp_path / "model.pt", "cpu")
    assert p2 == p
    vol, _ = _toy(np.random.default_rng(5))
    pr = score_study(m, vol, classifier_of(p2), batch_size=5)
    from labelup.data import slab_indices
    x = classifier_of(p2).preprocess(vol)
    with torch.no_grad():   # batching is invisible: each slice's probability is its own 7-slice slab's, clamped at the ends
        direct = [float(torch.sigmoid(m(x[torch.as_tensor(slab_indices(z, 16, p2.data.context))][None]))) for z in (0, 7, 15)]
    assert pr.shape == (16,) and np.allclose(pr[[0, 7, 15]], direct, atol=1e-5), (pr[[0, 7, 15]], direct)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from labelup._fixtures import toy_dataset
    from labelup.data import prepare
    root = tmp_path_factory.mktemp("data")
    toy_dataset(root, n_studies=8, shape=(24, 64, 64), seed=1, positive_fraction=0.5)
    out = tmp_path_factory.mktemp("cache")
    prepare(root, out, workers=1, progress=False)
    return out


def test_cli_smoke_profile(cache, tmp_path):
    out = tmp_path / "clf"
    assert cli_train_classifier(["--cache", str(cache), "--out", str(out), "--profile", "smoke", "--quiet",
                                 "--device", "cpu"]) == 0
    for f in ("model.pt", "log.csv", "class_balance.json", "metrics.json", "roc.png", "table1.md", "table1.csv"):
        assert (out / f).exists(), f
    log = pd.read_csv(out / "log.csv")
    assert log.step.iloc[-1] == get_profile("smoke").classifier.iterations
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_test_studies"] >= 1
    sc = pd.read_csv(out / "scores.csv"); t = sc[(sc.split == "test") & (sc.label >= 0)]   # Table I's F1, recomputed from the scores
    assert abs(slice_metrics(t.label, t.prob, m["threshold"])["f1"] - m["f1"]) < 1e-9
    assert "Xu et al." in (out / "table1.md").read_text()
    # idempotent: a second call returns the finished model without training
    mtime = (out / "model.pt").stat().st_mtime
    assert cli_train_classifier(["--cache", str(cache), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert (out / "model.pt").stat().st_mtime == mtime
    # other settings into the same folder: refused with one line, not the old model returned as if it were the new one
    from labelup.cli import main
    assert main(["train-classifier", "--cache", str(cache), "--out", str(out), "--quiet", "--device", "cpu",
                 "--set", "classifier.iterations=61"]) == 2
    assert (out / "model.pt").stat().st_mtime == mtime
    csv = tmp_path / "scores.csv"
    assert cli_score(["--cache", str(cache), "--checkpoint", str(out / "model.pt"), "--out", str(csv)]) == 0
    sc = pd.read_csv(csv)
    assert len(sc) == 8 * 24
    # the command's scores are the library's: the checkpoint's classifier on the first study, slice by slice
    from labelup.classifier import load_classifier, score_study
    from labelup.data import load_study
    m, prof = load_classifier(out / "model.pt", "cpu")
    sc = pd.read_csv(csv, dtype={"StudyInstanceUID": str}); s0 = sorted(sc.StudyInstanceUID.unique())[0]
    mine = sc[sc.StudyInstanceUID == s0].sort_values("z").prob.to_numpy()
    np.testing.assert_allclose(mine, score_study(m, load_study(cache, s0).image, classifier_of(prof)), atol=1e-5)


def test_torchrun_two_processes(cache, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
           sys.executable, "-c", "from labelup.cli import run; run()", "train-classifier", "--cache", str(cache),
           "--out", str(out), "--device", "cpu", "--quiet", "--no-evaluate", "--set", *TINY]
    p = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    ck = torch.load(out / "ckpt" / "step_0000006.pt", weights_only=True)
    assert ck["world_size"] == 2 and len(ck["rng"]) == 2
    meta = torch.load(out / "model.pt", weights_only=True)["meta"]
    assert meta["world_size"] == 2
