"""`teacher.tune_filter` (issue: evidence): the minimum cluster size a run uses is chosen on its own validation studies,
once, and stage 2 and 3 use it; the test studies play no part. With `teacher.tune_reference` the IG reference and
mask fill are chosen there too."""
import json

import pandas as pd
import pytest

from labelup.core import UsageError, get_profile
from labelup.pipeline import ensure_split, positive_studies, teacher_profile


def test_size_filter_chosen_on_validation(tmp_path):
    p = get_profile("smoke", ["teacher.tune_filter=true", "teacher.tune_reference=true", "data.val_fraction=0.3"])
    assert teacher_profile(tmp_path, get_profile("smoke"), None) == get_profile("smoke")   # off: the profile as it is
    tuned = teacher_profile(tmp_path, p, None, "cpu")
    ch = json.loads((tmp_path / "teacher_tuning" / "choice.json").read_text())
    sweep = pd.read_csv(tmp_path / "teacher_tuning" / "sweep.csv")
    assert tuned.teacher.min_cluster_voxels == ch["min_cluster_voxels"] and ch["profile_min_cluster_voxels"] == 100
    assert tuned.teacher.agg_threshold == ch["agg_threshold"] and ch["profile_agg_threshold"] == p.teacher.agg_threshold
    assert sweep.agg_threshold.nunique() > 1                                           # the vote threshold was swept too
    assert sweep.chosen.sum() == 1 and sweep.f1.fillna(-1).max() == sweep[sweep.chosen].f1.fillna(-1).iloc[0]
    val = positive_studies(tmp_path, p, None, "val")
    test = ensure_split(tmp_path, p, None)["test"]
    labelled = sorted(f.name[:-5] for f in (tmp_path / "teacher_tuning").glob("*.json") if f.name != "settings.json"
                      and f.name != "choice.json")
    assert labelled == sorted(val) and not set(labelled) & set(test)                  # chosen on validation only
    assert sorted(f.name[:-7] for f in (tmp_path / "teacher_tuning" / "votes").glob("*.nii.gz")) == sorted(val)
    assert teacher_profile(tmp_path, p, None, "cpu") == tuned                            # once per run
    refs = pd.read_csv(tmp_path / "teacher_tuning" / "references.csv")
    assert refs.choice.tolist()[0] == "paper" and len(refs) == 4                           # the smoke profile's own (zeros) first
    win = refs[refs.chosen].iloc[0]
    assert refs.chosen.sum() == 1 and win.choice == ch["choice"] and ch["confidence"] == 0.9
    # the profile's own, unless the best F1 wins the paired bootstrap with confidence
    assert win.choice == "paper" or (win.f1 == refs.f1.max() and win.win_share >= 0.9)
    assert pd.isna(refs.win_share.iloc[0]) and refs.win_share.iloc[1:].notna().all()   # each other one against the own
    assert (tuned.teacher.reference, tuned.teacher.mask_fill) == (win.reference, win.mask_fill)
    assert tuned.teacher.min_cluster_voxels == win.min_cluster_voxels                     # the filters tuned with that reference
    for c in refs.choice[1:]:                                                             # every other one labelled the same studies
        assert sorted(f.name[:-7] for f in (tmp_path / "teacher_tuning" / c / "votes").glob("*.nii.gz")) == sorted(val)



def test_stale_or_forged_choice_is_not_used(tmp_path):
    "choice.json holds for one classifier and one set of teacher settings; a value in it is checked like `--set`."
    p = get_profile("smoke", ["teacher.tune_filter=true", "data.val_fraction=0.3"])
    tuned = teacher_profile(tmp_path, p, None, "cpu")
    f = tmp_path / "teacher_tuning" / "choice.json"
    ch = json.loads(f.read_text())
    assert len(ch["basis"]["checkpoint"]) == 16 and ch["basis"]["settings"]["teacher"]["ig_steps"] == p.teacher.ig_steps
    assert "min_cluster_voxels" not in ch["basis"]["settings"]["teacher"]   # what the tuning sets is not part of its basis
    # a retrained classifier (another checkpoint hash): the choice is made again, not reused
    f.write_text(json.dumps(dict(ch, min_cluster_voxels=123457, basis=dict(ch["basis"], checkpoint="0" * 16))))
    assert teacher_profile(tmp_path, p, None, "cpu") == tuned
    assert json.loads(f.read_text())["basis"] == ch["basis"]
    # the profile it returned maps to the same choice: nothing is tuned again (ensure_teacher gets the tuned profile)
    before = f.read_text()
    assert teacher_profile(tmp_path, tuned, None, "cpu") == tuned and f.read_text() == before
    # another teacher setting (here the profile's own size filter, not on the size ladder) makes it again
    p2 = get_profile(p, ["teacher.min_cluster_voxels=37"])
    teacher_profile(tmp_path, p2, None, "cpu")
    assert json.loads(f.read_text())["profile_min_cluster_voxels"] == 37
    # a forged value with the right basis is refused like the same --set
    ch = json.loads(f.read_text())
    f.write_text(json.dumps(dict(ch, min_cluster_voxels=-3)))
    with pytest.raises(UsageError, match="teacher.min_cluster_voxels=-3: must be >= 0"):
        teacher_profile(tmp_path, p2, None, "cpu")
    f.write_text(json.dumps(dict(ch, agg_threshold=[0.3])))                              # a value of the wrong type
    with pytest.raises(UsageError, match=r"teacher.agg_threshold=\[0.3\]: not a valid float"):
        teacher_profile(tmp_path, p2, None, "cpu")
    f.write_text("{not json")                                                             # unreadable: tuned again
    assert teacher_profile(tmp_path, p2, None, "cpu").teacher.min_cluster_voxels == ch["min_cluster_voxels"]
