"""`prepare` never silently corrupts a study: each fault of the "Hardening" issue, reproduced on a toy dataset.

Every test checks the message (or the logged skip), not only that nothing raised.
"""
import json
import logging
import os

import numpy as np
import pandas as pd
import pydicom
import pytest

import labelup.data as D
from labelup._fixtures import toy_dataset
from labelup.dicom import HU_AIR, DicomSeriesError, lenient_dicom, read_series, write_series

SHAPE = (8, 24, 24)  # dz = 1.25 mm (toy_dataset's default spacing)


@pytest.fixture
def root(tmp_path):
    "A fresh 3-study dataset (every study positive, so every study has boxes)."
    return toy_dataset(tmp_path / "data", n_studies=3, shape=SHAPE, seed=7, positive_fraction=1.0)


def studies(root):
    return sorted(p.name for p in (root / "train").iterdir())


def series_dir(root, study):
    return next((root / "train" / study).iterdir())


def ordered_files(root, study):
    "The study's slice files in slice order (along the normal)."
    d = series_dir(root, study)
    return [d / f"{s}.dcm" for s in read_series(d)[1]["sop_uids"]]


def errors(cache):
    return pd.read_csv(cache / "errors.csv", dtype=str).set_index("StudyInstanceUID").error.to_dict()


def leftovers(cache, study):
    "Anything of `study` in the cache: its folder or a temporary of it."
    return [p for p in cache.iterdir() if p.name == study or p.name.startswith(f".{study}.")] + list(cache.rglob(".*.tmp*"))


def edit(path, **tags):
    with lenient_dicom():
        ds = pydicom.dcmread(path)
        for k, v in tags.items(): setattr(ds, k, v)
        ds.save_as(path)


# 1. a missing or unreadable slice -------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["0-byte", "header-truncated", "text", "deleted"])
def test_unreadable_slice_is_a_named_skip(root, tmp_path, fault):
    s = studies(root)[0]
    f = ordered_files(root, s)
    victim = f[3]
    if fault == "deleted": victim.unlink()
    else: victim.write_bytes({"0-byte": b"", "header-truncated": victim.read_bytes()[:200], "text": b"see slice 4"}[fault])
    idx = D.prepare(root, tmp_path / "cache", progress=False)
    assert s not in set(idx.StudyInstanceUID) and len(idx) == 2
    msg = errors(tmp_path / "cache")[s]
    assert f"gap of 2 slice spacings (2.5 mm) between {f[2].name} and {f[4].name}" in msg, msg
    rel = str(victim.relative_to(root))
    assert (rel in msg) == (fault != "deleted"), msg
    assert str(root) not in msg and str(tmp_path) not in msg
    assert leftovers(tmp_path / "cache", s) == []
    with pytest.raises(DicomSeriesError, match="gap of 2 slice spacings"):
        D.prepare(root, tmp_path / "strict", progress=False, strict=True, studies=[s])


def test_gap_pad_keeps_true_positions(root, tmp_path):
    s = studies(root)[0]
    f = ordered_files(root, s)
    full, _ = read_series(f[0].parent)
    f[5].write_bytes(b"")
    D.prepare(root, tmp_path / "cache", progress=False, gaps="pad")
    st = D.load_study(tmp_path / "cache", s)
    src = D.to_source_grid(st.image, st.meta)[0]          # the series' own slice order (the cache may run feet to head)
    at = (lambda k: len(full) - 1 - k) if st.meta["orientation"]["flipped"][2] else (lambda k: k)
    assert st.image.shape == full.shape and st.meta["filled_slices"] == [at(5)]
    assert (src[5] == HU_AIR).all() and st.labels[at(5)] == -1
    keep = [k for k in range(len(full)) if k != 5]
    assert np.array_equal(src[keep], full[keep])
    assert st.meta["skipped_files"] == [str(f[5].relative_to(root))]
    sl = pd.read_csv(tmp_path / "cache" / s / "slices.csv", dtype=str, keep_default_na=False)
    assert sl.SOPInstanceUID[at(5)] == "" and sl.SOPInstanceUID[at(4)] == f[4].stem
    with pytest.raises(ValueError, match="gaps must be one of"):
        D.prepare(root, tmp_path / "c2", progress=False, gaps="close")


def test_uneven_but_no_gap_still_reads(tmp_path):
    hu = np.zeros((4, 8, 8), np.int16)
    write_series(hu[:3], tmp_path / "s", "st", "se", ["a", "b", "c"], spacing=(2.0, 1, 1))
    write_series(hu[3:], tmp_path / "s", "st", "se", ["d"], spacing=(2.0, 1, 1), origin=(0, 0, 6.5))  # a 2.5 mm step
    vol, geom = read_series(tmp_path / "s")
    assert vol.shape == (4, 8, 8) and any("uneven slice spacing" in w for w in geom["warnings"]) and geom["filled"] == []


# 2. exact PixelData length --------------------------------------------------------------------------------------

def test_pixeldata_longer_than_header_is_an_error(root, tmp_path):
    s = studies(root)[1]
    p = ordered_files(root, s)[2]
    with lenient_dicom():
        ds = pydicom.dcmread(p); ds.PixelData = ds.PixelData + b"\0" * 4; ds.save_as(p)
    D.prepare(root, tmp_path / "cache", progress=False)
    msg = errors(tmp_path / "cache")[s]
    assert f"{p.relative_to(root)}: PixelData is {24 * 24 * 2 + 4} bytes, {24 * 24 * 2} expected" in msg, msg


def test_pixeldata_odd_length_padding_is_allowed(tmp_path):
    def one(extra):
        d = tmp_path / f"odd{extra}"
        p = write_series(np.zeros((1, 8, 8), np.int16), d, "st", "se", ["a"])[0]
        with lenient_dicom():
            ds = pydicom.dcmread(p)
            ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 5, 5, 8, 8, 7, 0
            ds.PixelData = bytes(range(25)) + b"\0" * extra; ds["PixelData"].VR = "OB"; ds.save_as(p)
        return d
    assert np.array_equal(read_series(one(1))[0][0], np.arange(25).reshape(5, 5))
    with pytest.raises(DicomSeriesError, match="odd3/a.dcm: PixelData is 28 bytes, 25 expected"):  # 25 + 3, even: no pad added
        read_series(one(3))


# 3. RescaleSlope 0 and non-finite header values -------------------------------------------------------------------

@pytest.mark.parametrize("tag,value,want", [
    ("RescaleSlope", 0, "RescaleSlope 0"),
    ("RescaleSlope", "inf", "RescaleSlope [inf] is not finite"),
    ("RescaleIntercept", "nan", "RescaleIntercept [nan] is not finite"),
    ("ImagePositionPatient", [0, 0, "nan"], "ImagePositionPatient [0.0, 0.0, nan] is not finite"),
    ("PixelSpacing", [0.7, "inf"], "PixelSpacing [0.7, inf] is not finite"),
    ("ImageOrientationPatient", [1, 0, 0, "nan", 1, 0], "ImageOrientationPatient [1.0, 0.0, 0.0, nan, 1.0, 0.0] is not finite"),
])
def test_bad_header_values_name_the_file(root, tmp_path, tag, value, want):
    s = studies(root)[2]
    p = ordered_files(root, s)[4]
    edit(p, **{tag: value})
    D.prepare(root, tmp_path / "cache", progress=False)
    msg = errors(tmp_path / "cache")[s]
    assert f"{p.relative_to(root)}: {want}" in msg, msg
    assert leftovers(tmp_path / "cache", s) == []


# 4. bad box rows; a failed study leaves nothing --------------------------------------------------------------------

@pytest.mark.parametrize("col,value", [("width", "inf"), ("height", "-3"), ("x", "nan"), ("y", "abc")])
def test_bad_box_row_skips_the_study_and_leaves_nothing(root, tmp_path, col, value):
    s = studies(root)[0]
    bx = pd.read_csv(root / "boxes.csv", dtype=str)
    i = int(np.flatnonzero(bx.StudyInstanceUID == s)[0])
    bx.loc[i, col] = value; bx.to_csv(root / "boxes.csv", index=False)
    cache = tmp_path / "cache"
    (cache / s).mkdir(parents=True); (cache / s / "image.nii.gz").write_bytes(b"partial")  # an older, partial run
    idx = D.prepare(root, cache, progress=False)
    assert sorted(idx.StudyInstanceUID) == studies(root)[1:]
    msg = errors(cache)[s]
    assert msg.startswith("bad box row(s): boxes.csv") and f"line {i + 2}: {col} '{value}' is not a finite, non-negative number" in msg, msg
    assert leftovers(cache, s) == []
    with pytest.raises(DicomSeriesError, match=f"study {s}: bad box row"):
        D.prepare(root, tmp_path / "strict", progress=False, strict=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_failure_while_writing_leaves_nothing(root, tmp_path, monkeypatch, workers):
    "A study that fails after image.nii.gz is written (here: boxes.nii.gz cannot be written) leaves no file in the cache."
    real = D.save_volume
    def flaky(path, *a, **k):
        if path.name == "boxes.nii.gz" and f".{studies(root)[1]}." in str(path): raise OSError("disk full")
        return real(path, *a, **k)
    monkeypatch.setattr(D, "save_volume", flaky)
    cache = tmp_path / "cache"
    idx = D.prepare(root, cache, workers=workers, progress=False)
    s = studies(root)[1]
    assert len(idx) == 2 and errors(cache)[s] == "OSError: disk full"
    assert leftovers(cache, s) == []
    monkeypatch.setattr(D, "save_volume", real)
    assert len(D.prepare(root, cache, progress=False)) == 3 and pd.read_csv(cache / "errors.csv").empty  # retried: no longer an error


# 5. train.csv rows and study folders that do not match --------------------------------------------------------------

def test_uid_mismatch_is_named_in_log_and_report(root, tmp_path, caplog):
    s = studies(root)[2]
    lab = pd.read_csv(root / "train.csv", dtype=str)
    lab.loc[lab.StudyInstanceUID == s, "StudyInstanceUID"] = "0000deadbeef"
    lab.to_csv(root / "train.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="labelup"):
        idx = D.prepare(root, tmp_path / "cache", progress=False)
    assert len(idx) == 3  # cached, but not silently
    rep = pd.read_csv(tmp_path / "cache" / "report.csv", dtype=str)
    assert sorted(zip(rep.StudyInstanceUID, rep.issue)) == [("0000deadbeef", "rows_without_folder"), (s, "folder_without_rows")]
    warn = [r.getMessage() for r in caplog.records]
    assert any("0000deadbeef" in m and "no folder" in m for m in warn), warn
    assert any(s in m and "no row in train.csv" in m for m in warn), warn
    summ = idx.attrs["summary"]
    assert (summ["rows_without_folder"], summ["folders_without_rows"], summ["ok"]) == (1, 1, True)
    assert "1 folder(s) without train.csv rows" in summ["line"]
    # a run of a subset reports only what it covers (train.csv rows are checked against the folders only in full runs)
    D.prepare(root, tmp_path / "cache", progress=False, studies=[s])
    rep = pd.read_csv(tmp_path / "cache" / "report.csv", dtype=str)
    assert list(zip(rep.StudyInstanceUID, rep.issue)) == [(s, "folder_without_rows")]


def test_labels_mismatch_is_reported(root, tmp_path):
    s = studies(root)[0]
    lab = pd.read_csv(root / "train.csv", dtype=str)
    lab.loc[(lab.StudyInstanceUID == s).to_numpy().nonzero()[0][:2], "SOPInstanceUID"] = ["0000000000a1", "0000000000a2"]
    lab.to_csv(root / "train.csv", index=False)
    D.prepare(root, tmp_path / "cache", progress=False)
    rep = pd.read_csv(tmp_path / "cache" / "report.csv", dtype=str)
    assert rep.values.tolist() == [[s, "labels_mismatch", "2 slice(s) without a train.csv label, 2 labelled SOP(s) not on disk"]]


# 6. a study folder that is a symlink loop (or a broken link) -------------------------------------------------------

def test_symlink_loop_is_named(root, tmp_path, caplog):
    (root / "train" / "00000000loop").symlink_to("00000000loop")
    (root / "train" / "0000000broken").symlink_to(tmp_path / "nowhere")
    with caplog.at_level(logging.WARNING, logger="labelup"):
        idx = D.prepare(root, tmp_path / "cache", progress=False)
    assert len(idx) == 3
    err = errors(tmp_path / "cache")
    assert err["00000000loop"] == "DicomSeriesError: study 00000000loop: train/00000000loop is a symlink loop"
    assert "train/0000000broken is a broken symlink" in err["0000000broken"]
    assert any(r.getMessage().startswith("study 00000000loop skipped") for r in caplog.records)
    assert idx.attrs["summary"]["why"] == {"symlink": 2}


# 7. the summary ----------------------------------------------------------------------------------------------------

def test_summary_clean_and_resumed(root, tmp_path):
    cache = tmp_path / "cache"
    idx = D.prepare(root, cache, progress=False)
    s = idx.attrs["summary"]
    assert s == json.loads((cache / "summary.json").read_text())
    assert (s["ok"], s["studies"], s["prepared"], s["already_prepared"], s["in_cache"], s["skipped"]) == (True, 3, 3, 0, 3, 0)
    assert s["line"] == "prepare: 3 of 3 studies in the cache (3 converted now, 0 already there); 0 skipped"
    s2 = D.prepare(root, cache, progress=False).attrs["summary"]
    assert (s2["prepared"], s2["already_prepared"], s2["in_cache"]) == (0, 3, 3)


def test_summary_counts_skips(root, tmp_path):
    a, b, _ = studies(root)
    ordered_files(root, a)[3].write_bytes(b"")
    edit(ordered_files(root, b)[1], RescaleSlope=0)
    s = D.prepare(root, tmp_path / "cache", progress=False).attrs["summary"]
    assert (s["ok"], s["prepared"], s["skipped"]) == (False, 1, 2)
    assert s["why"] == {"header value": 1, "missing slice": 1} and sorted(s["skipped_studies"]) == [a, b]
    assert "2 skipped (1 header value, 1 missing slice; see errors.csv)" in s["line"], s["line"]


# 8. no absolute path in logs or in the cache's reports --------------------------------------------------------------

def test_no_absolute_paths(root, tmp_path, caplog):
    a, b, c = studies(root)
    ordered_files(root, a)[3].write_bytes(b"x")
    (series_dir(root, b) / "notes.txt").write_text("not dicom")     # skipped with a warning (no gap)
    (root / "train" / "emptystudy").mkdir()
    with caplog.at_level(logging.INFO, logger="labelup"):
        D.prepare(root, tmp_path / "cache", workers=1, progress=False)
    texts = [r.getMessage() for r in caplog.records]
    texts += [(tmp_path / "cache" / f).read_text() for f in ("errors.csv", "report.csv", "summary.json")]
    texts += [(tmp_path / "cache" / b / "meta.json").read_text()]
    assert any(f"train/{b}/{series_dir(root, b).name}/notes.txt: not a DICOM image file" in t for t in texts)
    for t in texts: assert str(tmp_path) not in t and str(root) not in t, t


# 9. stale temporaries ----------------------------------------------------------------------------------------------

def test_sweep_stale_temporaries(root, tmp_path):
    "What a killed prepare left (files and a half-built study folder of a dead writer) is swept; a live writer's stays."
    import subprocess, sys
    from labelup.core import sweep_temporaries, writer_tag
    cache = tmp_path / "cache"
    D.prepare(root, cache, progress=False)
    s = studies(root)[0]
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait(); w = writer_tag(dead.pid)
    stale = [cache / f".index.csv.{w}.ab12cd.tmp.csv", cache / s / f".image.nii.gz.{w}.zz9.tmp.nii.gz", cache / f".{s}.{w}.q1.tmp"]
    stale[0].write_text("half"); stale[1].write_bytes(b"half"); stale[2].mkdir(); (stale[2] / "image.nii.gz").write_bytes(b"")
    live = cache / f".{s}.{writer_tag()}.q2.tmp"; live.mkdir()              # this process: a writer still at work
    keep = cache / s / "notes.tmp.txt"; keep.write_text("not ours")        # not a temporary of ours: no leading dot
    assert len(sweep_temporaries(cache)) == 3
    assert not any(p.exists() for p in stale) and keep.exists() and live.exists()
    live.rmdir(); stale[0].write_text("half")
    D.prepare(root, cache, progress=False)
    assert not stale[0].exists() and list(cache.rglob(".*.tmp*")) == []


def test_workers_die_with_their_parent(tmp_path):
    "SIGKILL to `labelup prepare --workers 2` takes its worker processes with it (no orphans left converting)."
    import signal, subprocess, sys, time
    import psutil
    from labelup._fixtures import toy_dataset
    root = toy_dataset(tmp_path / "raw", n_studies=8, shape=(64, 192, 192), seed=2)
    p = subprocess.Popen([sys.executable, "-c", "from labelup.cli import run; run()", "prepare", str(root), "--out",
                          str(tmp_path / "cache"), "--workers", "2", "--quiet"])
    t0, kids = time.time(), []
    while len(kids) < 2 and time.time() - t0 < 60 and p.poll() is None:
        kids = psutil.Process(p.pid).children(recursive=True); time.sleep(0.05)
    assert len(kids) >= 2, "prepare did not start its workers"
    p.send_signal(signal.SIGKILL); p.wait()
    gone, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, f"workers outlived their parent: {[k.pid for k in alive]}"
