"""Packaging: `pip wheel .` builds a wheel that installs outside the repo, imports, and runs `labelup --help`;
the base install needs no Jupyter tooling and the `[dev]` extra brings it.

The wheel is installed with `pip install --no-deps --target DIR` (the dependencies - torch, MONAI, ... - are
those of this environment; installing them again would take minutes) and run from a folder outside the
repository with `PYTHONPATH=DIR` only, so the code that runs is the wheel's, not the checkout's.
"""
import email, os, re, shutil, subprocess, sys, zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEV_ONLY = ["nbdev", "papermill", "jupyter", "ipykernel", "jupytext", "jupyter-book", "myst-nb", "sphinx", "pytest"]
BASE = ["numpy", "torch", "monai", "timm", "captum", "pydicom", "nibabel", "pandas", "scipy", "matplotlib"]
# modules that a base install (no [dev]) does not have: importing labelup must not need them
BLOCKED = ["nbdev", "fastcore", "execnb", "papermill", "jupytext", "ipykernel", "jupyter_client", "nbformat",
           "nbclient", "ipywidgets", "jupyter_book", "myst_nb", "sphinx", "pytest"]


def _name(req: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build from a copy: setuptools would leave build/ and egg-info in the checkout
    src.mkdir()
    for f in ["pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"]:
        if (ROOT / f).exists(): shutil.copy2(ROOT / f, src / f)
    shutil.copytree(ROOT / "labelup", src / "labelup", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(ROOT / "nbs", src / "nbs", ignore=shutil.ignore_patterns(".*"))
    out = tmp / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(out), "-q"]
    r = subprocess.run(cmd + ["--no-build-isolation"], capture_output=True, text=True)
    if r.returncode != 0:  # no setuptools in this environment: let pip fetch the build backend
        r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    whl = next(out.glob("labelup-*.whl"))
    return tmp, whl


def _install(whl, site):
    "The wheel alone in `site` (its dependencies are this environment's)."
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "--target", str(site), str(whl), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return site


def test_wheel_contents_and_metadata(wheel):
    _, whl = wheel
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
        eps = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    mods = sorted(p.relative_to(ROOT / "labelup").as_posix() for p in (ROOT / "labelup").rglob("*.py") if "__pycache__" not in p.parts)
    assert sorted(n.split("/", 1)[1] for n in names if n.startswith("labelup/") and n.endswith(".py")) == mods
    assert not any(n.startswith(("nbs/", "tests/", "tools/")) for n in names)
    nbs = sorted(p.name for p in (ROOT / "nbs").glob("*.ipynb"))
    assert sorted(n.split("/")[-1] for n in names if n.startswith("labelup/nbs/")) == nbs   # the notebooks travel with it
    assert re.search(r"^labelup\s*=\s*labelup\.cli:run", eps, flags=re.M), eps
    reqs = meta.get_all("Requires-Dist") or []
    base = {_name(r) for r in reqs if "extra ==" not in r}
    dev = {_name(r) for r in reqs if re.search(r"extra\s*==\s*['\"]dev['\"]", r)}
    assert "dev" in (meta.get_all("Provides-Extra") or [])
    assert not base & set(DEV_ONLY), f"the base install pulls in dev tooling: {sorted(base & set(DEV_ONLY))}"
    assert set(BASE) <= base, f"base dependencies missing: {sorted(set(BASE) - base)}"
    for d in ["nbdev", "papermill", "jupyter", "ipykernel", "jupyter-book", "myst-nb", "pytest"]:
        assert d in dev, f"[dev] lacks {d}"
    assert meta["Requires-Python"]


def test_wheel_installs_and_runs_outside_repo(wheel):
    tmp, whl = wheel
    site = _install(whl, tmp / "site")
    away = tmp / "elsewhere"; away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    # Import every module of the wheel with the [dev]-only packages made unimportable, then run the CLI.
    code = f"""
import importlib, importlib.abc, pkgutil, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}: raise ModuleNotFoundError(f'{{name}} (blocked: not in a base install)')
sys.meta_path.insert(0, Block())
import labelup
assert labelup.__file__.startswith({str(site)!r}), labelup.__file__
for m in pkgutil.iter_modules(labelup.__path__):
    importlib.import_module('labelup.' + m.name)
from labelup.cli import main
assert main(['--help']) == 0
print('OK', labelup.__version__)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=away, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    assert "usage: labelup" in r.stdout
    script = site / "bin" / "labelup"
    assert script.exists(), list(site.iterdir())
    r = subprocess.run([str(script), "--help"], cwd=away, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "usage: labelup" in r.stdout and "finetune" in r.stdout
    r = subprocess.run([str(script), "--version"], cwd=away, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == _version(), (r.stdout, r.stderr)


def test_reproduce_runs_from_the_wheel(wheel):
    "From an empty folder, with only the wheel on the path: `reproduce` finds the notebooks the wheel carries and runs one (04_phantom, the cheapest)."
    tmp, whl = wheel
    site = _install(whl, tmp / "site2")
    away = tmp / "empty"; away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP", "LABELUP_NBS")}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-c", "from labelup.paper.reproduce import find_notebooks; print(find_notebooks())"],
                       cwd=away, env=env, capture_output=True, text=True, timeout=300)
    assert r.stdout.strip() == str(site / "labelup" / "nbs"), r.stdout + r.stderr
    r = subprocess.run([str(site / "bin" / "labelup"), "reproduce", "--profile", "smoke", "--out", "run", "--notebooks", "04_phantom",
                        "--quiet"], cwd=away, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (away / "run" / "notebooks" / "04_phantom.ipynb").is_file() and (away / "run" / "results" / "README.md").is_file()
    assert (away / "run" / "data" / "train.csv").is_file()                       # the notebook ran and drew the phantom


def _version() -> str:
    import tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
