"""PE-level matching (labelup.evaluation) on hand-made cases, through the library and the CLI."""
import json, math

import numpy as np
import pytest

from labelup.core import UsageError, save_volume
from labelup.evaluation import match_pes, dice, evaluate_dirs, results_jsonable
from labelup.cli import cli_evaluate, main

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
    with pytest.raises(UsageError, match="s9") as e:
        evaluate_dirs(P, T)
    assert "[-0.7, 0.0, 0.0, 0.0]" in str(e.value) and "[1.0, 0.0, 0.0, 0.0]" in str(e.value)  # both affines
    save_volume(P / "s9.nii.gz", vol((4, 10, 9)), AFF, dtype=np.uint8)
    with pytest.raises(UsageError, match="s9") as e:
        evaluate_dirs(P, T)
    assert "(4, 10, 9) differs from the reference's (4, 10, 10)" in str(e.value)
    save_volume(P / "s9.nii.gz", vol(), AFF + np.diag([5e-4, 0, 0, 0]), dtype=np.uint8)  # within 1e-3 mm: fine
    assert evaluate_dirs(P, T)["n_studies"] == 1


# --- hardening: what `evaluate_dirs` refuses, names or ignores -------------------------------------------------

def two_studies(tmp_path):
    "Truth a (one PE) and b (one PE); predictions: a hits its PE, b is empty. Binary: TP 1, FN 1."
    T, P = tmp_path / "t", tmp_path / "p"
    r = vol(); r[1, 3:5, 3:5] = 1
    for s in ("a", "b"):
        save_volume(T / f"{s}.nii.gz", r, AFF, dtype=np.uint8)
    save_volume(P / "a.nii.gz", r, AFF, dtype=np.uint8)
    save_volume(P / "b.nii.gz", vol(), AFF, dtype=np.uint8)
    return T, P, r


def test_probability_map_needs_threshold(tmp_path):
    T, P, r = two_studies(tmp_path)
    for s in ("a", "b"):  # 0.9 in the PE of a, 0.02 everywhere else: was F1 100% (b's background hit b's PE)
        save_volume(P / f"{s}.nii.gz", np.where((r > 0) & (s == "a"), 0.9, 0.02), AFF, dtype=np.float32)
    with pytest.raises(UsageError, match=r"a\.nii\.gz: not a binary mask.*--threshold T"):
        evaluate_dirs(P, T)
    res = evaluate_dirs(P, T, threshold=0.5)
    assert (res["tp"], res["fp"], res["fn"], res["threshold"]) == (1, 0, 1, 0.5)
    assert evaluate_dirs(P, T, threshold=0.9)["tp"] == 1          # voxels >= threshold are PE
    assert evaluate_dirs(P, T, threshold=0.01)["tp"] == 2         # a threshold under the background: all PE
    for bad, msg in ((float("nan"), "a finite number"), (float("inf"), "a finite number"), ("x", "a number")):
        with pytest.raises(UsageError, match=f"threshold must be {msg}"):
            evaluate_dirs(P, T, threshold=bad)


def test_non_binary_integer_mask_refused(tmp_path):
    T, P, r = two_studies(tmp_path)
    save_volume(P / "a.nii.gz", r * 255, AFF, dtype=np.uint8)
    with pytest.raises(UsageError, match="not a binary mask.*max 255"):
        evaluate_dirs(P, T)
    assert evaluate_dirs(P, T, threshold=128)["tp"] == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_prediction_refused(tmp_path, bad):
    T, P, r = two_studies(tmp_path)
    save_volume(P / "b.nii.gz", np.where(r > 0, 1.0, bad), AFF, dtype=np.float32)  # was F1 100 with a NaN background
    n = r.size - int(r.sum())
    for thr in (None, 0.5):
        with pytest.raises(UsageError, match=rf"b\.nii\.gz: {n} voxels are NaN or infinite"):
            evaluate_dirs(P, T, threshold=thr)


def test_reference_values_checked(tmp_path):
    T, P, r = two_studies(tmp_path)
    save_volume(T / "a.nii.gz", np.where(r > 0, 1.0, np.nan), AFF, dtype=np.float32)
    with pytest.raises(UsageError, match=r"reference .*a\.nii\.gz: .*NaN or infinite"):
        evaluate_dirs(P, T)
    save_volume(T / "a.nii.gz", np.where(r > 0, 0.9, 0.02), AFF, dtype=np.float32)
    with pytest.raises(UsageError, match=r"reference .*a\.nii\.gz: not a mask"):
        evaluate_dirs(P, T)
    save_volume(T / "a.nii.gz", r * 2, AFF, dtype=np.int16)      # a label map: non-zero = PE, as before
    assert evaluate_dirs(P, T)["tp"] == 1


def test_nii_read_and_duplicates_refused(tmp_path):
    T, P, r = two_studies(tmp_path)
    (P / "b.nii.gz").unlink()
    save_volume(P / "b.nii", r, AFF, dtype=np.uint8)             # was ignored and counted as missing
    res = evaluate_dirs(P, T)
    assert (res["tp"], res["fn"], res["n_missing"]) == (2, 0, 0)
    save_volume(T / "c.nii", r, AFF, dtype=np.uint8)             # .nii references are read too
    assert evaluate_dirs(P, T)["n_studies"] == 3
    save_volume(P / "b.nii.gz", vol(), AFF, dtype=np.uint8)
    with pytest.raises(UsageError, match="two files for study b: b.nii and b.nii.gz"):
        evaluate_dirs(P, T)
    (P / "b.nii.gz").unlink()
    save_volume(T / "c.nii.gz", r, AFF, dtype=np.uint8)
    with pytest.raises(UsageError, match="two files for study c: c.nii and c.nii.gz"):
        evaluate_dirs(P, T)


def test_segment_sidecars_ignored_unknown_and_unmatched_named(tmp_path, caplog):
    T, P, r = two_studies(tmp_path)
    # what `labelup segment` writes beside a mask (student.segment_volume): <name>_prob.nii.gz and <name>.json
    save_volume(P / "a_prob.nii.gz", np.where(r > 0, 0.9, 0.02), AFF, dtype=np.float32)
    (P / "a.json").write_text("{}")
    (P / "iterations").mkdir(); save_volume(P / "iterations" / "a.nii.gz", r * 3, AFF, dtype=np.uint8)
    with caplog.at_level("WARNING"):
        res = evaluate_dirs(P, T)
    assert (res["unknown_files"], res["unmatched_predictions"]) == ([], [])
    assert "unknown" not in caplog.text and "absent" not in caplog.text
    (P / "notes.txt").write_text("x"); (P / "a.npy").write_bytes(b"")
    save_volume(P / "zz.nii.gz", r, AFF, dtype=np.uint8)          # a study the truth does not have: was silent
    caplog.clear()
    with caplog.at_level("WARNING"):
        res = evaluate_dirs(P, T)
    assert res["unknown_files"] == ["a.npy", "notes.txt"] and res["unmatched_predictions"] == ["zz"]
    assert (res["tp"], res["fp"], res["fn"], res["n_studies"]) == (1, 0, 1, 2)   # neither is scored
    assert "2 unknown files" in caplog.text and "a.npy, notes.txt" in caplog.text
    assert "studies absent from the reference" in caplog.text and "zz" in caplog.text
    j = results_jsonable(res)
    assert j["unmatched_predictions"] == ["zz"] and j["unknown_files"] == ["a.npy", "notes.txt"]


def test_cache_negative_predictions_are_not_unmatched(tmp_path):
    import pandas as pd
    C, P = tmp_path / "cache", tmp_path / "p"
    b = vol(); b[1:3, 2:5, 2:5] = 1
    save_volume(C / "A" / "boxes.nii.gz", b, AFF, dtype=np.uint8)
    save_volume(C / "A" / "image.nii.gz", b.astype(np.int16), AFF)
    save_volume(C / "N" / "image.nii.gz", vol().astype(np.int16), AFF)
    pd.DataFrame(dict(StudyInstanceUID=["A", "N"], has_boxes=[True, False], negative_exam_for_pe=[0, 1])).to_csv(
        C / "index.csv", index=False)
    for s in ("A", "N", "Z"):
        save_volume(P / f"{s}.nii.gz", b, AFF, dtype=np.uint8)
    res = evaluate_dirs(P, C)                                    # N is known (not scored); Z is not
    assert res["unmatched_predictions"] == ["Z"] and (res["tp"], res["fp"], res["n_studies"]) == (1, 0, 1)
    assert evaluate_dirs(P, C, include_negatives=True)["fp"] == 1


def test_missing_or_unrelated_pred_folder_refused(tmp_path, capsys):
    T, P, r = two_studies(tmp_path)
    with pytest.raises(UsageError, match="prediction folder not found"):
        evaluate_dirs(tmp_path / "pred_typo", T)
    with pytest.raises(UsageError, match="truth folder not found"):
        evaluate_dirs(P, tmp_path / "truth_typo")
    Q = tmp_path / "other"; save_volume(Q / "x.nii.gz", r, AFF, dtype=np.uint8)
    with pytest.raises(UsageError, match=r"none of the 2 studies scored has a prediction .*1 masks there: x"):
        evaluate_dirs(Q, T)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="none of the 2 studies scored has a prediction"):
        evaluate_dirs(tmp_path / "empty", T)
    with pytest.raises(UsageError, match="none of the 1 studies scored"):
        evaluate_dirs(Q, T, studies=["a"])
    (tmp_path / "t_empty").mkdir()
    with pytest.raises(UsageError, match="no reference studies"):
        evaluate_dirs(P, tmp_path / "t_empty")
    # the CLI: a mistyped --pred was F1 0.0 and exit 0; now one line on stderr and exit 2
    assert main(["evaluate", "--pred", str(tmp_path / "pred_typo"), "--truth", str(T)]) == 2
    err = capsys.readouterr().err
    assert "prediction folder not found" in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("which", ["pred", "truth"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_nifti_one_line(tmp_path, which, damage):
    T, P, _ = two_studies(tmp_path)
    big = (np.random.default_rng(0).random((8, 32, 32)) > 0.5).astype(np.uint8)  # enough data to cut into
    for d in (T, P):
        save_volume(d / "a.nii.gz", big, AFF, dtype=np.uint8); save_volume(d / "b.nii.gz", big, AFF, dtype=np.uint8)
    f = (P if which == "pred" else T) / "b.nii.gz"
    data = f.read_bytes()
    f.write_bytes({"garbage": b"\x1f\x8b not gzip", "truncated": data[: int(len(data) * 0.9)], "empty": b""}[damage])
    what = "prediction" if which == "pred" else "reference"
    with pytest.raises(UsageError, match=f"{what} .*b\\.nii\\.gz: not a readable NIfTI file") as e:
        evaluate_dirs(P, T)
    assert "\n" not in str(e.value)
    (f.parent / "b.nii.gz").rename(f.parent / "b.nii")            # an uncompressed .nii, damaged: the same error
    with pytest.raises(UsageError, match=r"b\.nii: not a readable NIfTI file"):
        evaluate_dirs(P, T)


def test_4d_prediction_refused(tmp_path):
    import nibabel as nib
    T, P, r = two_studies(tmp_path)
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 4, 2), np.uint8), AFF), str(P / "a.nii.gz"))
    with pytest.raises(UsageError, match=r"a\.nii\.gz: expected a 3D volume, got shape \(10, 10, 4, 2\)"):
        evaluate_dirs(P, T)


def test_array_helpers_refuse_nan():
    ref = vol(); ref[1, 1, 1] = 1
    pred = np.full(ref.shape, np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        match_pes(pred, ref)
    with pytest.raises(ValueError, match="NaN or infinite"):
        dice(pred, ref)
