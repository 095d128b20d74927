"""Data-layer tests that are awkward in the notebook: the CLI end to end, a crash mid-study, threaded decoding."""
import json

import numpy as np
import pandas as pd
import pytest

import labelup.data as D
import labelup.dicom as DI
from pydicom.uid import JPEG2000Lossless
from labelup._fixtures import toy_dataset
from labelup.cli import main


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return toy_dataset(tmp_path_factory.mktemp("data"), n_studies=3, shape=(10, 32, 32), seed=1)


def test_cli_prepare_and_bench(root, tmp_path):
    assert main(["prepare", str(root), "--out", str(tmp_path / "cache"), "--workers", "2", "--quiet"]) == 0
    idx = pd.read_csv(tmp_path / "cache" / "index.csv")
    assert list(idx.columns) == D.INDEX_COLUMNS and len(idx) == 3
    assert main(["bench", "prepare", "--root", str(root), "--studies", "2", "--repeats", "1", "--json", str(tmp_path / "b.json")]) == 0
    rec = json.loads((tmp_path / "b.json").read_text())
    assert {"speedup", "reference_s", "prepare_s", "studies", "slices", "workers"} <= set(rec)
    assert rec["studies"] == 2 and rec["slices"] == 20 and rec["identical_output"]


def test_crash_mid_study_is_redone(root, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    real = D.write_json_atomic
    def boom(path, obj):
        raise KeyboardInterrupt("killed before meta.json")
    monkeypatch.setattr(D, "write_json_atomic", boom)
    with pytest.raises(KeyboardInterrupt):
        D.prepare(root, cache, progress=False, strict=True)
    assert not list(cache.rglob("meta.json")) and not list(cache.rglob(".*tmp*"))
    monkeypatch.setattr(D, "write_json_atomic", real)
    idx = D.prepare(root, cache, progress=False)
    assert len(idx) == 3 and len(list(cache.rglob("meta.json"))) == 3


def test_threaded_compressed_read(tmp_path):
    hu = np.random.default_rng(0).integers(-1024, 3071, size=(5, 32, 32)).astype(np.int16)
    sops = [f"{i:012x}" for i in range(5)]
    DI.write_series(hu, tmp_path / "j", "st", "se", sops, transfer_syntax=JPEG2000Lossless, shuffle_instance_numbers=True, rng=3)
    v1, g1 = DI.read_series(tmp_path / "j", threads=1)
    v2, g2 = DI.read_series(tmp_path / "j", threads=3)
    assert np.array_equal(v1, hu) and np.array_equal(v2, hu) and g1["sop_uids"] == g2["sop_uids"] == sops


def test_labels_missing_columns_message(tmp_path):
    pd.DataFrame({"StudyInstanceUID": ["a"], "SeriesInstanceUID": ["b"], "SOPInstanceUID": ["c"]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"t.csv: missing column\(s\) \['pe_present_on_image'\]"):
        D.read_labels(tmp_path / "t.csv")


@pytest.mark.parametrize("layout", ["no train folder", "empty train folder"])
def test_prepare_on_a_wrong_root_is_one_line(tmp_path, capsys, layout):
    "A folder that is not an RSPECT-layout root: one line naming it, exit 2, no traceback."
    (tmp_path / "root").mkdir(); (tmp_path / "root" / "train.csv").write_text("StudyInstanceUID\n")
    if layout == "empty train folder": (tmp_path / "root" / "train").mkdir()
    assert main(["prepare", str(tmp_path / "root"), "--out", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labelup prepare: error: ") and err.count("\n") == 1 and "train" in err, err
