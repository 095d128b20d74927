"""Phantom dataset checks beyond the notebook: the CLI dispatch, worker-count independence, resuming."""
import json

import numpy as np
import pandas as pd

from labelup.cli import main
from labelup.core import load_volume
from labelup.phantom import make_phantom_dataset, phantom_summary

SHAPE = (16, 48, 48)


def test_cli_dispatch(tmp_path):
    out = tmp_path / "ds"
    assert main(["phantom", str(out), "--studies", "2", "--seed", "3", "--shape", *map(str, SHAPE)]) == 0
    tr = pd.read_csv(out / "train.csv")
    assert len(tr) == 2 * SHAPE[0]
    assert len(list((out / "train").rglob("*.dcm"))) == 2 * SHAPE[0]
    assert len(list((out / "masks").glob("*.nii.gz"))) == 2


def test_workers_do_not_change_the_data(tmp_path):
    a = make_phantom_dataset(tmp_path / "a", 3, seed=4, shape=SHAPE, workers=1)
    b = make_phantom_dataset(tmp_path / "b", 3, seed=4, shape=SHAPE, workers=2)
    assert pd.read_csv(a / "train.csv").equals(pd.read_csv(b / "train.csv"))
    assert pd.read_csv(a / "boxes.csv").equals(pd.read_csv(b / "boxes.csv"))
    for s in phantom_summary(a).study:
        np.testing.assert_array_equal(load_volume(a / "masks" / f"{s}.nii.gz")[0], load_volume(b / "masks" / f"{s}.nii.gz")[0])


def test_interrupted_study_is_redone(tmp_path):
    out = make_phantom_dataset(tmp_path / "ds", 2, seed=5, shape=SHAPE)
    studies = json.loads((out / "phantom.json").read_text())["studies"]
    before = pd.read_csv(out / "train.csv")
    # a run killed after writing study 0's DICOM but before its record: the record is written last
    (out / "phantom" / f"{studies[0]}.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in (out / "train" / studies[1]).rglob("*.dcm")}
    make_phantom_dataset(out, 2, seed=5, shape=SHAPE)
    assert (out / "phantom" / f"{studies[0]}.json").exists()
    assert {p: p.stat().st_mtime_ns for p in (out / "train" / studies[1]).rglob("*.dcm")} == kept  # untouched
    assert pd.read_csv(out / "train.csv").equals(before)
    assert not (out / ".tmp").exists()


def test_anatomical_calibres_on_the_synthetic_grid(tmp_path):
    """The synthetic profile's phantom has CTPA's calibres: PE components' largest in-plane inscribed diameter
    median <= 12 mm and 90th percentile <= 22 mm, no artery wider than 33 mm, on a grid that resolves them."""
    from labelup.core import get_profile
    from labelup.phantom import calibres, phantom_params
    d = get_profile("synthetic").data
    out = make_phantom_dataset(tmp_path / "ds", 24, seed=11, shape=d.phantom_shape, positive_fraction=0.7, workers=2,
                               params=phantom_params(d.holdout_regime))
    cal = calibres(out)
    pe, art = cal[cal.kind == "PE"].diameter_mm, cal[cal.kind == "artery"].diameter_mm
    assert len(pe) >= 24, len(pe)
    assert pe.median() <= 12 and pe.quantile(0.9) <= 22 and art.max() <= 33, cal.groupby("kind").diameter_mm.describe()
    rec = [json.loads(p.read_text())["info"] for p in (out / "phantom").glob("*.json")]
    assert max(r["pixel_mm"] for r in rec) <= 2.8 and max(r["slice_mm"] for r in rec) <= 4.0   # lobar/segmental resolvable
    assert {r["regime"] for r in rec} <= {"arterial", "poor"}                                  # the held-out regime is absent


def test_cli_takes_the_profiles_grid(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["phantom", str(out), "--profile", "synthetic", "--studies", "2"]) == 0
    said = capsys.readouterr().out
    assert "2 studies of 64 x 128 x 128" in said and "without the late contrast regime" in said, said
    meta = json.loads((out / "phantom.json").read_text())
    assert meta["shape"] == [64, 128, 128] and meta["n_studies"] == 2 and meta["params"]["bolus_p"][2] == 0.0
    assert main(["phantom", str(tmp_path / "own"), "--profile", "synthetic", "--studies", "1", "--shape", "16", "48", "48"]) == 0
    assert json.loads((tmp_path / "own" / "phantom.json").read_text())["shape"] == [16, 48, 48]   # explicit beats the profile
