"""Stage 2 at scale: sharded (RANK/WORLD_SIZE) and resumed pseudo-labelling, plus the teacher's core pieces.

Uses a tiny synthetic cache (`labelup.data.toy_dataset` + `prepare`) and the toy classifier of `07_explain`
passed as a module, so it runs in seconds on a CPU.
"""
import json
import os

import numpy as np
import pytest
import torch

from labelup.core import get_profile, load_volume
from labelup.data import list_studies, prepare
from labelup._fixtures import toy_dataset, train_toy_classifier
from labelup.filter import filter_clusters
from labelup.iterate import aggregate_slabs, cluster_heatmap
from labelup.teacher import is_done, pseudo_label, shard
from labelup.settings import teacher_of


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("pseudo")
    toy_dataset(d / "raw", n_studies=5, shape=(10, 40, 40), seed=7)
    prepare(d / "raw", d / "cache", workers=1, progress=False)
    prof = get_profile("smoke", {"data.image_size": 40, "teacher.ig_steps": 4, "teacher.max_iterations": 2})
    return d, train_toy_classifier(steps=30, size=40), prof


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_shards_union_and_resume(setup, monkeypatch):
    d, model, prof = setup
    studies = list_studies(d / "cache")
    out = d / "sharded"
    got = []
    for r in (0, 1):
        monkeypatch.setenv("RANK", str(r)); monkeypatch.setenv("WORLD_SIZE", "2")
        recs = pseudo_label(d / "cache", model, out, teacher_of(prof))
        assert [x["study"] for x in recs] == shard(sorted(studies), r, 2)
        got += [x["study"] for x in recs]
    monkeypatch.delenv("RANK"); monkeypatch.delenv("WORLD_SIZE")
    assert sorted(got) == studies and len(set(got)) == len(got)  # a partition: union, no overlap
    for s in studies:
        assert (out / f"{s}.nii.gz").exists() and (out / f"{s}.json").exists() and (out / "iterations" / f"{s}.nii.gz").exists()
    # an unsharded run over the same folder finds everything done
    mt = {s: (out / f"{s}.json").stat().st_mtime_ns for s in studies}
    pseudo_label(d / "cache", model, out, teacher_of(prof))
    assert {s: (out / f"{s}.json").stat().st_mtime_ns for s in studies} == mt
    # same result as a single process
    single = d / "single"
    pseudo_label(d / "cache", model, single, teacher_of(prof))
    for s in studies:
        np.testing.assert_array_equal(load_volume(out / f"{s}.nii.gz")[0], load_volume(single / f"{s}.nii.gz")[0])


def test_half_finished_run_resumes(setup):
    d, model, prof = setup
    studies = list_studies(d / "cache")
    out = d / "half"
    pseudo_label(d / "cache", model, out, teacher_of(prof), studies=studies[:2])  # "killed" after 2 studies
    # a crash mid-study leaves a label without a record: that study must be redone
    (out / f"{studies[2]}.nii.gz").write_bytes(b"partial")
    mt = {s: (out / f"{s}.json").stat().st_mtime_ns for s in studies[:2]}
    recs = pseudo_label(d / "cache", model, out, teacher_of(prof))
    assert sorted(r["study"] for r in recs) == studies
    assert {s: (out / f"{s}.json").stat().st_mtime_ns for s in studies[:2]} == mt  # finished ones not redone
    load_volume(out / f"{studies[2]}.nii.gz")  # the partial file was replaced by a valid NIfTI
    assert not [f for f in _files(out) if f.split("/")[-1].startswith(".") or ".tmp" in f]  # no temp files
    rec = json.loads((out / f"{studies[0]}.json").read_text())
    assert rec["settings"] == json.loads(json.dumps(teacher_of(prof).outcome)) and "iterations" in rec and "time_s" in rec
    assert not is_done(out, studies[0], teacher_of(get_profile(prof, {"teacher.low_threshold": 0.3})).outcome, "in-memory")
    # the IG quadrature is an outcome setting: a record names it, and labels of another rule or point count are stale
    assert (rec["settings"]["teacher"]["ig_rule"], rec["settings"]["teacher"]["ig_rule_steps"]) == ("gausslegendre", 0)
    for k, v in (("teacher.ig_rule", "riemann_middle"), ("teacher.ig_rule_steps", 3)):
        assert not is_done(out, studies[0], teacher_of(get_profile(prof, {k: v})).outcome, "in-memory")


def test_shard_errors():
    assert shard(list(range(7)), 2, 3) == [2, 5]
    with pytest.raises(ValueError): shard([1], 3, 2)


def test_clustering_and_filter_basics():
    h = torch.zeros(3, 12, 12); h[1, 3, 3] = 1; h[1, 3, 5] = 0.4; h[1, 9, 9] = 0.4
    seg = cluster_heatmap(h, 0.5, 0.2, (1, 2, 2))
    assert seg[1, 3, 5] and not seg[1, 9, 9]  # within reach joins; far low voxel without a seed does not
    m = np.zeros((2, 20, 20), np.uint8); m[0, 9:11, 9:11] = 1; m[0, 0, 0] = 1
    f, tab = filter_clusters(m, min_voxels=2, max_distance=5)
    assert f.sum() == 4 and len(tab) == 2
    d = np.zeros((7, 2, 2), np.uint8); d[:, 0, 0] = 2
    agg = aggregate_slabs({3: d}, 8, (2, 2), max_iterations=3)
    assert agg[:, 0, 0].tolist() == [0, 0, 0, 2, 0, 0, 0, 0]


def test_heatmaps_written_on_cache_grid(setup):
    d, model, prof = setup
    s = list_studies(d / "cache")[0]
    out = d / "heat"
    pseudo_label(d / "cache", model, out, teacher_of(prof), studies=[s], heatmaps=True)
    h, aff = load_volume(out / "heatmaps" / f"{s}.nii.gz")
    img, aff_img = load_volume(d / "cache" / s / "image.nii.gz")
    assert h.shape == img.shape and np.allclose(aff, aff_img, atol=1e-5)
    rec = json.loads((out / f"{s}.json").read_text())
    assert (float(h.max()) > 0) == (rec["n_positive_slabs"] > 0)      # evidence exactly where windows were explained
