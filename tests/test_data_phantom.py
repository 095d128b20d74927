"""End to end: `labelup phantom` then `labelup prepare` round-trips exactly (needs labelup.phantom)."""
import json

import numpy as np
import pandas as pd
import pytest

import labelup.data as D
from labelup.core import load_volume

import labelup.phantom as phantom


def test_phantom_prepare_round_trip(tmp_path):
    shape = (16, 48, 48)
    root = phantom.make_phantom_dataset(tmp_path / "data", 3, seed=5, shape=shape, positive_fraction=0.7)
    idx = D.prepare(root, tmp_path / "cache", workers=2, progress=False)
    assert len(idx) == 3
    train = pd.read_csv(root / "train.csv", dtype={"SOPInstanceUID": str})
    for s in D.list_studies(tmp_path / "cache"):
        st = D.load_study(tmp_path / "cache", s)
        key = json.loads((root / "phantom" / f"{s}.json").read_text())["key"]
        truth = phantom.phantom_study(key["seed"], key["index"], tuple(key["shape"]), key["positive"])
        assert np.abs(st.image.astype(int) - np.clip(truth.hu, -1024, 3071)).max() <= 1   # same HU, same voxel
        mask, aff = load_volume(root / "masks" / f"{s}.nii.gz")
        assert np.allclose(aff, st.affine, atol=1e-4) and mask.shape == st.image.shape  # same grid
        sl = pd.read_csv(tmp_path / "cache" / s / "slices.csv", dtype={"SOPInstanceUID": str})
        assert sl.SOPInstanceUID.tolist() == truth.sops                                  # slice k = phantom slice k
        lab = train.set_index("SOPInstanceUID").loc[sl.SOPInstanceUID].pe_present_on_image.to_numpy()
        assert np.array_equal(st.labels, lab)
        assert np.array_equal(st.labels == 1, mask.reshape(len(mask), -1).max(1) > 0)  # labels agree with the mask
        if st.boxes is not None:
            assert not (mask.astype(bool) & ~st.boxes.astype(bool)).any()               # boxes cover every PE voxel
