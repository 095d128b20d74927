"""Stage 3 student (labelup.student): a tiny training step, checkpoint round trip, output grid/affine."""
import json

import numpy as np
import pytest
import torch

from labelup.core import file_hash, get_profile, load_volume, save_volume
from labelup.student import (build_student, load_student, segment_studies, segmentation_loss, train_student,
                             read_study)
from labelup.data import list_studies
from labelup.settings import student_of

TINY = ["student.filters=4,8,16", "student.patch_size=32,32,8", "student.sw_step=16,16,4",
        "student.batch_size=2", "student.iterations=3", "student.warmup=1", "student.lr=1e-3",
        "student.ckpt_every=2"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from labelup.data import prepare, load_study
    from labelup._fixtures import toy_dataset
    root = tmp_path_factory.mktemp("seg")
    toy_dataset(root / "data", n_studies=3, shape=(12, 40, 40), seed=3, positive_fraction=0.67)
    prepare(root / "data", root / "cache", progress=False)
    names = list_studies(root / "cache")
    for s in names:
        st = load_study(root / "cache", s)
        if st.boxes is not None and st.boxes.any():
            save_volume(root / "masks" / f"{s}.nii.gz", st.boxes, st.affine, dtype=np.uint8)
    return root, names


def test_training_step_changes_weights():
    p = get_profile("smoke", TINY)
    torch.manual_seed(0)
    m = build_student(p.student)
    before = [q.detach().clone() for q in m.parameters()]
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    x = torch.rand(2, 1, 32, 32, 8); y = torch.zeros_like(x); y[0, 0, 10:16, 10:16, 2:5] = 1
    loss = segmentation_loss(m(x), y)
    assert torch.isfinite(loss)
    # the loss is ~0 for confident logits that match the target and ~1 for confident logits that contradict it
    assert float(segmentation_loss(20.0 * (2 * y - 1), y)) < 1e-3 < 0.99 < float(segmentation_loss(-20.0 * (2 * y - 1), y))
    loss.backward(); opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_train_checkpoint_and_segment_grid(toy, tmp_path):
    root, names = toy
    p = get_profile("smoke", TINY)
    ck = train_student(root / "cache", root / "masks", tmp_path / "seg", student_of(p), names, device="cpu")
    assert ck.exists()
    raw = torch.load(ck, map_location="cpu", weights_only=True)      # plain tensors/numbers/strings only
    m, prof = load_student(ck, "cpu")
    assert prof.student.filters == (4, 8, 16)
    m2 = build_student(prof.student); m2.load_state_dict(raw["model"]); m2.eval()
    x = torch.rand(1, 1, 32, 32, 8)
    with torch.no_grad(): assert torch.allclose(m(x), m2(x), atol=1e-6)
    # the train rerun is a no-op (model.pt exists)
    mt = ck.stat().st_mtime
    assert train_student(root / "cache", root / "masks", tmp_path / "seg", student_of(p), names, device="cpu") == ck
    assert ck.stat().st_mtime == mt
    recs = segment_studies(root / "cache", ck, tmp_path / "pred", None, studies=names, device="cpu", probabilities=True)
    assert len(recs) == len(names)
    for s in names:
        img, aff = read_study(root / "cache", s)
        pm, pa = load_volume(tmp_path / "pred" / f"{s}.nii.gz")
        assert pm.shape == img.shape and pm.dtype == np.uint8
        np.testing.assert_allclose(pa, aff, atol=1e-6)
        pr, _ = load_volume(tmp_path / "pred" / f"{s}_prob.nii.gz")
        assert pr.shape == img.shape
        np.testing.assert_array_equal(pm, (pr >= get_profile("smoke", TINY).student.threshold).astype(np.uint8))  # mask = thresholded map
        assert json.loads((tmp_path / "pred" / f"{s}.json").read_text())["study"] == s
    # another student into the same prediction folder: refused with a message naming both checkpoints; --force redoes it
    from labelup.core import UsageError
    other = train_student(root / "cache", root / "masks", tmp_path / "seg2", student_of(get_profile("smoke", TINY + ["student.iterations=4"])),
                          names, device="cpu")
    with pytest.raises(UsageError, match="holds predictions of another checkpoint"):
        segment_studies(root / "cache", other, tmp_path / "pred", None, studies=names, device="cpu")
    recs = segment_studies(root / "cache", other, tmp_path / "pred", None, studies=names, device="cpu", force=True)
    assert {r["checkpoint"] for r in recs} == {file_hash(other)}
    # and the student's folder refuses other settings unless forced
    with pytest.raises(UsageError, match="student.iterations"):
        train_student(root / "cache", root / "masks", tmp_path / "seg2", student_of(p), names, device="cpu")


def test_training_reads_the_store(toy, tmp_path):
    "The student trains from stored arrays: the image store in the cache and the label voxels in OUT/store."
    from labelup.student import load_training_set
    root, names = toy
    p = get_profile("smoke", TINY)
    smp = load_training_set(root / "cache", root / "masks", student_of(p), names, tmp_path / "store")
    # every array is read from a .npy file: the images from the cache's store, the label voxels from OUT/store
    assert all(getattr(v, "path", None) is not None and (root / "cache").resolve() in v.path.resolve().parents for v in smp.images)
    assert all(getattr(v, "path", None) is not None and (tmp_path / "store").resolve() in v.path.resolve().parents for v in smp.fg)
    img, _ = read_study(root / "cache", names[0])
    assert smp.images[0].shape == img.shape and smp.images[0].dtype == np.uint8
    lab, _ = load_volume(root / "masks" / f"{names[0]}.nii.gz") if (root / "masks" / f"{names[0]}.nii.gz").exists() else (np.zeros(img.shape), None)
    assert len(smp.fg[0]) == int((lab != 0).sum())
    x, y = smp.sample(4, np.random.default_rng(0))
    assert x.shape == (4, 1, 32, 32, 8) and y.flatten(1).sum(1)[:2].min() > 0
