"""What a training run records about how it ran (issue: speed): `--threads N` is applied and written to
`OUT/runtime.json` with the device, the CPU, the precision and what the precision probe measured."""
import json

import pytest
import torch

from labelup.cli import main
from labelup.core import _THREADS
from labelup.engine import TrainConfig, train_precision

TINY = ["student.filters=4,8,16", "student.patch_size=32,32,8", "student.sw_step=16,16,4", "student.batch_size=2",
        "student.iterations=2", "student.warmup=1", "student.ckpt_every=2", "student.amp_cpu=true"]


@pytest.fixture
def toy(tmp_path):
    from labelup._fixtures import toy_dataset
    from labelup.core import save_volume
    from labelup.data import list_studies, load_study, prepare
    data = toy_dataset(tmp_path / "data", n_studies=2, shape=(12, 40, 40), seed=3, positive_fraction=1.0)
    prepare(data, tmp_path / "cache", progress=False)
    for s in list_studies(tmp_path / "cache"):
        st = load_study(tmp_path / "cache", s)
        save_volume(tmp_path / "masks" / f"{s}.nii.gz", st.boxes, st.affine)
    return tmp_path


def test_threads_option_and_runtime_record(toy):
    before = torch.get_num_threads()
    try:
        argv = ["train-student", "--cache", str(toy / "cache"), "--labels", str(toy / "masks"), "--out", str(toy / "s"),
                "--device", "cpu", "--quiet", "--threads", "1", *sum([["--set", t] for t in TINY], [])]
        assert main(argv) == 0
        rt = json.loads((toy / "s" / "runtime.json").read_text())
        assert rt["threads"] == 1 and rt["device"] == "cpu" and rt["world_size"] == 1
        assert set(rt["probe_s"]) == {"float32", "bfloat16"}           # amp_cpu allows bf16: both were timed
        assert rt["precision"] == train_precision(TrainConfig(amp_cpu=True), "cpu", rt["probe_s"])   # by what it measured
        assert main(argv[:-2 * len(TINY)] + ["--threads", "0"]) == 2    # a bad thread count is one line, exit 2
    finally:
        _THREADS["set"] = None; torch.set_num_threads(before)
