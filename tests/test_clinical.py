"""The student on a new patient's data, as a user runs it: `labelup segment --input`, `export-seg`, `export-bundle`
under `python -m monai.bundle run`, and the top-level Python API."""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from labelup.cli import main
from labelup.core import get_profile, load_volume, save_volume


@pytest.fixture(scope="module")
def toy(tmp_path_factory, toy_student):
    "Three toy studies (head-first supine, feet-first supine, prone) as DICOM, their cache, and a tiny trained student."
    return toy_student(tmp_path_factory.mktemp("clin"), 3, 5)


def test_segment_a_folder_of_studies(toy, tmp_path):
    import highdicom as hd
    from labelup.dicom import read_series
    root, data, names, ck = toy
    out = tmp_path / "out"
    assert main(["segment", "--checkpoint", str(ck), "--input", str(data / "train"), "--out", str(out), "--device", "cpu",
                 "--set", "student.threshold=0.3", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for s in names:
        d = out / s
        assert {"mask.nii.gz", "prob.nii.gz", "pes.csv", "qc.png", "seg.dcm", "record.json"} <= {p.name for p in d.iterdir()}
        mask, aff = load_volume(d / "mask.nii.gz")
        series = next((data / "train" / s).iterdir())
        vol, geom = read_series(series)
        assert mask.shape == vol.shape and np.allclose(aff, geom["affine"], atol=1e-4)      # the series' own grid
        pes = pd.read_csv(d / "pes.csv")
        assert len(pes) == json.loads((d / "record.json").read_text())["components"]
        seg = hd.seg.segread(d / "seg.dcm")
        assert str(seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue) == "59282003"
        for k, sop in enumerate(geom["sop_uids"]):   # every SEG frame is the mask's slice of the instance it refers to
            if mask[k].any():
                px = seg.get_pixels_by_source_instance(source_sop_instance_uids=[sop], segment_numbers=[1])
                assert np.array_equal(px[0, ..., 0].astype(np.uint8), mask[k].astype(np.uint8)), (s, k)
        assert int(seg.NumberOfFrames) == int(mask.any(axis=(1, 2)).sum())


def test_segment_nifti_and_old_dicom_flag(toy, tmp_path):
    root, data, names, ck = toy
    from labelup.data import load_study
    st = load_study(root / "cache", names[1])
    save_volume(tmp_path / "ct.nii.gz", st.image, st.affine)
    assert main(["segment", "--checkpoint", str(ck), "--input", str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--quiet"]) == 0
    assert {p.name for p in (tmp_path / "o" / "ct").iterdir()} == {"mask.nii.gz", "prob.nii.gz", "pes.csv", "qc.png", "record.json"}
    assert json.loads((tmp_path / "o" / "ct" / "record.json").read_text())["filters"] is False   # the smoke profile's default
    assert main(["segment", "--checkpoint", str(ck), "--input", str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "of"),
                 "--device", "cpu", "--quiet", "--filters"]) == 0                                # the stage-2 filters on request
    assert json.loads((tmp_path / "of" / "ct" / "record.json").read_text())["filters"] is True
    m, mf = (load_volume(tmp_path / d / "ct" / "mask.nii.gz")[0] for d in ("o", "of"))
    assert not (mf.astype(bool) & ~m.astype(bool)).any()                                       # filtering only removes voxels
    series = next((data / "train" / names[0]).iterdir())
    assert main(["segment", "--checkpoint", str(ck), "--dicom", str(series), "--out", str(tmp_path / "d"), "--device", "cpu",
                 "--quiet", "--no-seg"]) == 0
    assert (tmp_path / "d" / names[0] / "mask.nii.gz").exists() and not (tmp_path / "d" / names[0] / "seg.dcm").exists()


def test_export_seg_from_the_cache_grid(toy, tmp_path):
    "A pseudo-label on the prepared (canonical) grid of a feet-first or prone study goes back onto its series for the SEG."
    import highdicom as hd
    from labelup.data import load_study, to_source_grid
    from labelup.dicom import read_series
    root, data, names, ck = toy
    s = next(n for n in names if any(load_study(root / "cache", n, image=False).meta["orientation"]["flipped"]))
    series = next((data / "train" / s).iterdir())
    assert main(["export-seg", "--mask", str(root / "masks" / f"{s}.nii.gz"), "--dicom", str(series), "--out",
                 str(tmp_path / "seg.dcm"), "--checkpoint", str(ck)]) == 0
    st = load_study(root / "cache", s)
    src = to_source_grid(st.boxes, st.meta)[0]
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    sops = read_series(series)[1]["sop_uids"]
    for k in np.flatnonzero(src.any(axis=(1, 2))):
        px = seg.get_pixels_by_source_instance(source_sop_instance_uids=[sops[k]], segment_numbers=[1])
        assert np.array_equal(px[0, ..., 0].astype(np.uint8), src[k])
    save_volume(tmp_path / "bad.nii.gz", st.boxes, np.eye(4))
    assert main(["export-seg", "--mask", str(tmp_path / "bad.nii.gz"), "--dicom", str(series), "--out", str(tmp_path / "x.dcm")]) == 2


def test_bundle_matches_labelup_segment(toy, tmp_path):
    "The exported bundle under `python -m monai.bundle run` gives labelup segment's probabilities (float32 both)."
    root, data, names, ck = toy
    from labelup.data import load_study
    st = load_study(root / "cache", names[2])
    save_volume(tmp_path / "ct.nii.gz", st.image, st.affine)
    b = tmp_path / "bundle"
    assert main(["export-bundle", "--checkpoint", str(ck), "--out", str(b)]) == 0
    assert main(["export-bundle", "--checkpoint", str(ck), "--out", str(b)]) == 2          # not over an existing bundle
    r = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(b / "configs" / "inference.json"),
                        "--meta_file", str(b / "configs" / "metadata.json"), "--bundle_root", str(b),
                        "--input_image", str(tmp_path / "ct.nii.gz"), "--output_dir", str(tmp_path / "mb")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert main(["segment", "--checkpoint", str(ck), "--input", str(tmp_path / "ct.nii.gz"), "--out", str(tmp_path / "lu"),
                 "--device", "cpu", "--quiet", "--set", "student.amp=false", "student.crop=none"]) == 0   # the bundle reads the whole study
    pb, ab = load_volume(next((tmp_path / "mb").glob("*_prob.nii.gz")))
    pl, al = load_volume(tmp_path / "lu" / "ct" / "prob.nii.gz")
    assert np.allclose(ab, al, atol=1e-4) and np.abs(pb - pl).max() < 1e-3
    meta = json.loads((b / "configs" / "metadata.json").read_text())
    assert meta["labelup"]["checkpoint"] and "Network plan" in (b / "docs" / "README.md").read_text()


def test_top_level_api_and_jpeg_hint(monkeypatch, tmp_path):
    import labelup
    from labelup.clinical import segment_study
    assert labelup.segment_study is segment_study and "segment_study" in labelup.__all__
    with pytest.raises(AttributeError): labelup.no_such_thing
    import pydicom
    import labelup.dicom as D
    from labelup.dicom import DicomSeriesError, read_series, write_series
    from pydicom.uid import JPEGLSLossless
    write_series(np.zeros((2, 32, 32), np.int16), tmp_path / "s", "1.2", "1.2.1", ["1.2.1.1", "1.2.1.2"], transfer_syntax=JPEGLSLossless)
    monkeypatch.setattr(D, "_has_libjpeg", lambda: False)
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(lambda self: (_ for _ in ()).throw(RuntimeError("no plugin"))))
    with pytest.raises(DicomSeriesError, match=r"pip install 'labelup\[jpeg\]'"): read_series(tmp_path / "s")
