import os

# Tests run on small CPUs: keep BLAS/torch from oversubscribing when pytest-xdist runs workers in parallel.
os.environ.setdefault("MPLBACKEND", "Agg")
# One BLAS/OpenMP thread per process: the suite starts multi-process runs (torchrun, papermill kernels) on
# small CPUs, where oversubscribed OpenMP threads made training several times slower. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")


# The suite runs on pytest-xdist workers (pyproject's addopts: `-n auto --dist loadfile`), one per core up to four:
# most of its time is two end-to-end runs (the smoke reproduction, the README walkthrough) that each use one core.
# Whole files go to one worker, so a module-scoped fixture (a trained toy model, the smoke run) is built once.
# (`--dist loadgroup` would need pytest-xdist to rename test ids, which pytest 9 no longer lets it do.)
def pytest_xdist_auto_num_workers(config):
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


# The longest files go out first (`--no-loadscope-reorder` keeps this order; xdist would send the files with the most
# tests first), so that no worker starts one of them when the others are nearly done (about 7, 6
# and 5 minutes on a 2-core CPU; the rest take seconds to a minute each).
_FIRST = ("test_reproduce.py", "test_readme.py", "test_notebooks.py", "test_bench_scale.py", "test_docs.py")


def pytest_collection_modifyitems(config, items):
    rank = {n: i for i, n in enumerate(_FIRST)}
    items.sort(key=lambda it: rank.get(it.path.name, len(_FIRST)))   # stable: the other files keep their order


import pytest


@pytest.fixture(scope="session")
def toy_student():
    """A function `(root, n_studies, seed) -> (root, data, names, checkpoint)`: toy studies as DICOM (`toy_dataset`), their
    cache, their boxes as masks and a tiny student trained on them for three steps (what the segment tests run)."""
    def make(root, n_studies: int, seed: int):
        from labelup._fixtures import toy_dataset
        from labelup.core import get_profile, save_volume
        from labelup.data import list_studies, load_study, prepare
        from labelup.student import train_student
        from labelup.settings import student_of
        data = toy_dataset(root / "data", n_studies=n_studies, shape=(12, 40, 40), seed=seed, positive_fraction=1.0)
        prepare(data, root / "cache", progress=False)
        names = list_studies(root / "cache")
        for s in names:
            st = load_study(root / "cache", s)
            save_volume(root / "masks" / f"{s}.nii.gz", st.boxes, st.affine)
        tiny = ["student.filters=4,8,16", "student.patch_size=32,32,8", "student.sw_step=16,16,4", "student.batch_size=2",
                "student.iterations=3", "student.warmup=1", "student.ckpt_every=3"]
        ck = train_student(root / "cache", root / "masks", root / "student", student_of(get_profile("smoke", tiny)), names, device="cpu")
        return root, data, names, ck
    return make


@pytest.fixture(scope="session")
def labelup_wheel(tmp_path_factory):
    """`(tmp, whl)`: the wheel `pip wheel .` builds from a copy of the checkout (setuptools would leave build/ and
    egg-info in the checkout itself)."""
    import shutil, subprocess, sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for f in ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"]:
        if (root / f).exists(): shutil.copy2(root / f, src / f)
    shutil.copytree(root / "labelup", src / "labelup", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(root / "nbs", src / "nbs", ignore=shutil.ignore_patterns(".*"))
    out = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(out), "-q"]
    r = subprocess.run(cmd + ["--no-build-isolation"], capture_output=True, text=True)
    if r.returncode != 0:  # no setuptools in this environment: let pip fetch the build backend
        r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp, next(out.glob("labelup-*.whl"))


def install_wheel(whl, site):
    "The wheel alone in `site` (`pip install --no-deps --target`: its dependencies are this environment's)."
    import subprocess, sys
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target", str(site), str(whl), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return site


def wheel_env(site) -> dict:
    "The environment that runs the installed wheel's code, not the checkout's (its folder first on the path)."
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP", "LABELUP_NBS")}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return env
