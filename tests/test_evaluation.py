"""PE-level matching (labelup.evaluation) on hand-made cases, through the library and the CLI."""
import json, math

import numpy as np
import pytest

from labelup.core import save_volume
from labelup.evaluation import match_pes, dice, evaluate_dirs
from labelup.cli import cli_evaluate

AFF = np.diag([-0.7, -0.7, 1.25, 1.0])


def vol(shape=(4, 10, 10)):
    return np.zeros(shape, np.uint8)


def test_bridging_detection_two_tp():
    ref = vol(); ref[1, 1:3, 1:3] = 1; ref[1, 1:3, 6:8] = 1
    pred = vol(); pred[1, 2, 1:8] = 1
    assert match_pes(pred, ref) == dict(tp=2, fp=0, fn=0, n_pred=1, n_ref=2)


def test_several_detections_one_pe():
    ref = vol(); ref[0:3, 1:9, 1:9] = 1
    pred = vol(); pred[0, 2, 2] = 1; pred[1, 5, 5] = 1; pred[2, 7, 7] = 1; pred[3, 0, 0] = 1  # last one: FP
    assert match_pes(pred, ref) == dict(tp=1, fp=1, fn=0, n_pred=4, n_ref=1)


def test_diagonal_contact_26_connectivity():
    ref = vol(); ref[0, 0, 0] = 1; ref[1, 1, 1] = 1          # one PE through a corner
    pred = vol(); pred[1, 1, 1] = 1; pred[2, 2, 2] = 1       # one detection through a corner, overlapping
    assert match_pes(pred, ref) == dict(tp=1, fp=0, fn=0, n_pred=1, n_ref=1)
    pred = vol(); pred[2, 2, 2] = 1                          # corner contact is not intersection
    assert match_pes(pred, ref) == dict(tp=0, fp=1, fn=1, n_pred=1, n_ref=1)


def test_empty_and_dice():
    assert match_pes(vol(), vol()) == dict(tp=0, fp=0, fn=0, n_pred=0, n_ref=0)
    assert math.isnan(dice(vol(), vol()))
    a = vol(); a[0, 0, :4] = 1; b = vol(); b[0, 0, 2:4] = 1
    assert dice(a, b) == pytest.approx(4 / 6)


def test_dirs_missing_prediction_and_cli(tmp_path, caplog):
    T, P = tmp_path / "t", tmp_path / "p"
    r = vol(); r[1, 3:5, 3:5] = 1
    save_volume(T / "a.nii.gz", r, AFF, dtype=np.uint8)
    save_volume(T / "b.nii.gz", r, AFF, dtype=np.uint8)
    save_volume(P / "a.nii.gz", r, AFF, dtype=np.uint8)
    with caplog.at_level("WARNING"):
        res = evaluate_dirs(P, T)
    assert (res["tp"], res["fp"], res["fn"], res["n_missing"]) == (1, 0, 1, 1)
    assert res["sensitivity"] == pytest.approx(0.5) and res["ppv"] == pytest.approx(1.0)
    assert res["dice"] == pytest.approx(2 * 4 / (4 + 8))
    assert "no prediction" in caplog.text
    out = tmp_path / "r.json"
    assert cli_evaluate(["--pred", str(P), "--truth", str(T), "--json", str(out)]) == 0
    j = json.loads(out.read_text())
    assert (j["tp"], j["fp"], j["fn"]) == (1, 0, 1) and j["f1"] == pytest.approx(2 / 3)


def test_grid_mismatch_names_study(tmp_path):
    T, P = tmp_path / "t", tmp_path / "p"
    save_volume(T / "s9.nii.gz", vol(), AFF, dtype=np.uint8)
    save_volume(P / "s9.nii.gz", vol(), np.diag([1.0, 1, 1, 1]), dtype=np.uint8)
    with pytest.raises(ValueError, match="s9"):
        evaluate_dirs(P, T)
    save_volume(P / "s9.nii.gz", vol((4, 10, 9)), AFF, dtype=np.uint8)
    with pytest.raises(ValueError, match="s9"):
        evaluate_dirs(P, T)
