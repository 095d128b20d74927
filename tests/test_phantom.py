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
