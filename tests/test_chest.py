"""The second synthetic family (`labelup.chest`): determinism, the RSPECT layout through `prepare`, clot levels
and resolution, mimics in negative studies, labels against masks, HU ranges, and a difficulty check."""
import json
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

import labelup.data as D
from labelup.chest import CHEST, CHEST_TISSUES, MUCUS, chest_study, make_chest_dataset
from labelup.core import load_volume
from labelup.phantom import (ARTERY, EXAM_COLUMNS, NODE, VEIN, calibres, make_phantom_dataset, mask_boxes,
                             phantom_study, phantom_summary)

SHAPE = (32, 96, 96)
N = 16                                   # studies of the shared sample: even index positive, odd negative


@lru_cache(maxsize=None)
def study(i, positive=None, shape=SHAPE):
    return chest_study(seed=21, index=i, shape=shape, positive=(i % 2 == 0) if positive is None else positive)


def test_deterministic_and_int16():
    a, b = study(0), chest_study(seed=21, index=0, shape=SHAPE, positive=True)
    assert a.hu.dtype == np.int16 and a.hu.tobytes() == b.hu.tobytes() and a.pe.tobytes() == b.pe.tobytes()
    assert a.vessels.tobytes() == b.vessels.tobytes() and a.sops == b.sops and a.study == b.study
    c = chest_study(seed=22, index=0, shape=SHAPE, positive=True)
    assert c.study != a.study and (c.hu != a.hu).any()
    dz, dy, dx = a.spacing
    assert dy == dx and 2.5 <= dx <= 4.5 and 4.0 <= dz <= 9.0       # a real chest on a 96-pixel, 32-slice grid


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chest")
    root = make_chest_dataset(tmp / "data", 4, seed=3, shape=(24, 64, 64), positive_fraction=0.5, workers=2)
    return tmp, root


def test_rspect_layout_and_prepare(dataset):
    tmp, root = dataset
    meta = json.loads((root / "phantom.json").read_text())
    assert meta["family"] == "chest" and meta["n_studies"] == 4 and len(meta["studies"]) == 4
    train = pd.read_csv(root / "train.csv", dtype={"SOPInstanceUID": str})
    assert len(train) == 4 * 24 == len(list((root / "train").rglob("*.dcm")))
    assert list(train.columns[4:]) == EXAM_COLUMNS
    summ = phantom_summary(root)
    assert summ.positive.sum() == 2 and len(calibres(root))
    idx = D.prepare(root, tmp / "cache", workers=1, progress=False)
    assert len(idx) == 4
    for s in D.list_studies(tmp / "cache"):
        st = D.load_study(tmp / "cache", s)
        rec = json.loads((root / "phantom" / f"{s}.json").read_text())
        assert rec["key"]["family"] == "chest"
        truth = chest_study(rec["key"]["seed"], rec["key"]["index"], tuple(rec["key"]["shape"]), rec["key"]["positive"])
        assert np.abs(st.image.astype(int) - truth.hu).max() <= 1
        mask, aff = load_volume(root / "masks" / f"{s}.nii.gz")
        assert np.allclose(aff, st.affine, atol=1e-4) and mask.shape == st.image.shape
        sl = pd.read_csv(tmp / "cache" / s / "slices.csv", dtype={"SOPInstanceUID": str})
        assert sl.SOPInstanceUID.tolist() == truth.sops
        lab = train.set_index("SOPInstanceUID").loc[sl.SOPInstanceUID].pe_present_on_image.to_numpy()
        assert np.array_equal(st.labels, lab) and np.array_equal(st.labels == 1, mask.any((1, 2)))   # label == mask has voxels
        assert sorted(map(tuple, rec["boxes"])) == sorted(mask_boxes(mask))
        rows = train[train.StudyInstanceUID == s]
        assert rows[EXAM_COLUMNS].nunique().max() == 1 and int(rows.negative_exam_for_pe.iloc[0]) == int(not mask.any())
        if mask.any():
            assert rows.leftsided_pe.iloc[0] + rows.rightsided_pe.iloc[0] + rows.central_pe.iloc[0] >= 1
            assert not (mask.astype(bool) & ~st.boxes.astype(bool)).any()


def test_families_never_mix(tmp_path):
    out = tmp_path / "ds"
    make_phantom_dataset(out, 2, seed=3, shape=(16, 48, 48))
    first = set(json.loads((out / "phantom.json").read_text())["studies"])
    assert "family" not in json.loads((out / "phantom.json").read_text())
    make_chest_dataset(out, 2, seed=3, shape=(16, 48, 48))
    second = set(json.loads((out / "phantom.json").read_text())["studies"])
    assert not first & second                                         # other ids: never taken for finished studies
    assert {p.name for p in (out / "train").iterdir()} == second       # the other family's studies were removed
    assert all(json.loads((out / "phantom" / f"{s}.json").read_text())["key"]["family"] == "chest" for s in second)


def test_clots_levels_and_resolution():
    clots = []
    for i in range(0, N, 2):
        st = study(i)
        assert st.pe.any() and not ((st.pe > 0) & (st.vessels != 1)).any()                 # clots lie in arteries
        for c in st.info["clots"]:
            assert c["voxels"] > 0 and c["across_px"] >= 2, c                                 # every clot resolved
            assert c["clean_hu"] < st.info["artery_hu"] - 100, (c, st.info["artery_hu"])     # darker than the lumen
            assert 6 <= c["hu"] <= 160
            clots.append(c)
    lv = pd.Series([c["level"] for c in clots]).value_counts(normalize=True)
    assert lv.get("lobar", 0) + lv.get("segmental", 0) >= 0.6, lv                             # mostly lobar and segmental
    assert "occlusive" in {c["type"] for c in clots}     # on this grid most lumens are too thin for a partial clot
    assert min(c["across_px"] for c in clots) == 2       # the smallest clots are at the grid's limit: 2 voxels across


def test_finer_grid_shows_more_levels_and_shapes():
    clots = [c for i in (0, 2, 4) for c in study(i, True, (64, 128, 128)).info["clots"]]
    lv = pd.Series([c["level"] for c in clots]).value_counts()
    print("64 x 128 x 128 clots:", dict(lv), sorted({c["type"] for c in clots}))
    assert set(lv.index) <= {"central", "lobar", "segmental", "subsegmental"} and len(clots) >= 3
    assert (lv.get("lobar", 0) + lv.get("segmental", 0)) / len(clots) >= 0.6
    assert len({c["type"] for c in clots}) >= 2 and all(c["across_px"] >= 2 for c in clots)


def test_mimics_in_negative_studies():
    negs = [study(i) for i in range(1, N, 2)]
    assert all(not s.pe.any() for s in negs)
    assert all(len(s.info["mimics"]) >= 1 for s in negs), [s.info["mimics"] for s in negs]
    kinds = {m for s in negs for m in s.info["mimics"]}
    assert {"poor_veins", "hilar_nodes", "svc_streaks"} <= kinds and kinds & {"mixing_jet", "interruption"}, kinds
    for i in range(0, N, 2):                                           # mimics are never labelled in positive studies
        st = study(i)
        assert not (st.pe.astype(bool) & np.isin(st.tissue, [NODE, MUCUS, VEIN])).any()


def test_positive_and_negative_twins_share_anatomy():
    a, b = study(0, True), study(0, False)
    assert a.info["mimics"] == b.info["mimics"] and float((a.hu != b.hu).mean()) < 0.1


def test_hu_ranges():
    st = study(2, True, (40, 144, 144))
    med = {n: float(np.median(st.hu[st.tissue == i])) for i, n in enumerate(CHEST_TISSUES) if (st.tissue == i).any()}
    assert -920 <= med["lung"] <= -780 and -120 <= med["fat"] <= -50 and med["bone"] > 180, med
    assert med["air"] < -950 and 20 <= med["soft tissue"] <= 90 and med["dense contrast"] > 200, med
    assert 0 <= med["clot"] <= 120, med
    core = np.stack([ndi.binary_erosion(s) for s in st.tissue == ARTERY])
    assert 0.6 * st.info["artery_hu"] <= np.median(st.hu[core]) <= st.info["artery_hu"] + 30
    for s in (study(i) for i in range(N)):
        i = s.info
        assert 120 <= i["artery_hu"] <= 470 and 55 <= i["vein_hu"] <= 650 and 10 <= i["noise_hu"] <= 32
        assert s.hu.min() >= -1024 and s.hu.max() <= 3071


def _auroc(y, s):
    y, s = np.asarray(y, bool), np.asarray(s, float)
    pos, neg = s[y], s[~y]
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))


def test_threshold_detector_does_not_separate_studies():
    """The simplest filling-defect detector (count the pulmonary-vessel voxels below 100 HU, or only those one
    pixel in from the vessel's edge) must not separate positive from negative studies or slices well: mimics,
    partial volume and noise put dark voxels in the vessels of negative studies too."""
    ys, yz, s_all, s_core, z_core = [], [], [], [], []
    for i in range(N):
        st = study(i)
        v = st.vessels > 0
        core = np.stack([ndi.binary_erosion(s) for s in v])
        ys.append(st.pe.any()); yz += st.pe.any((1, 2)).tolist()
        s_all.append(int(((st.hu < 100) & v).sum())); s_core.append(int(((st.hu < 100) & core).sum()))
        z_core += ((st.hu < 100) & core).sum((1, 2)).tolist()
    a_all, a_core, a_slice = _auroc(ys, s_all), _auroc(ys, s_core), _auroc(yz, z_core)
    print(f"threshold detector AUROC: study (all vessel voxels) {a_all:.2f}, study (core) {a_core:.2f}, slice (core) {a_slice:.2f}")
    assert a_all < 0.85 and a_core < 0.85 and a_slice < 0.9, (a_all, a_core, a_slice)
    # at least as hard as the first family on the same grid and detector
    yz1, z1 = [], []
    for i in range(N):
        st = phantom_study(seed=21, index=i, shape=SHAPE, positive=i % 2 == 0)
        core = np.stack([ndi.binary_erosion(s) for s in st.vessels > 0])
        yz1 += st.pe.any((1, 2)).tolist(); z1 += ((st.hu < 100) & core).sum((1, 2)).tolist()
    print(f"first family, slice (core) {_auroc(yz1, z1):.2f}")
    assert a_slice < _auroc(yz1, z1)
