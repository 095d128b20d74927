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


from conftest import install_wheel as _install, wheel_env


@pytest.fixture(scope="module")
def wheel(labelup_wheel):
    return labelup_wheel


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


def test_notebooks_extra_covers_the_result_notebooks(wheel):
    "Every package a result notebook imports, as `reproduce` runs it, comes with the base install or the `notebooks` extra."
    import ast, importlib.metadata as md
    from labelup.paper.reproduce import RESULT_NOTEBOOKS, OPTIONAL_NOTEBOOKS, runnable_notebook
    _, whl = wheel
    with zipfile.ZipFile(whl) as z:
        meta = email.message_from_bytes(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))))
    reqs = meta.get_all("Requires-Dist") or []
    have = {_name(r) for r in reqs if "extra ==" not in r or re.search(r"extra\s*==\s*['\"]notebooks['\"]", r)} | {"ipython"}   # IPython: ipykernel's
    dists = md.packages_distributions()
    missing = set()
    for name, _ in RESULT_NOTEBOOKS + OPTIONAL_NOTEBOOKS:
        for c in runnable_notebook(ROOT / "nbs" / f"{name}.ipynb")["cells"]:
            if c["cell_type"] != "code": continue
            src = "\n".join(l for l in "".join(c["source"]).splitlines() if not l.lstrip().startswith(("%", "!")))
            for n in ast.walk(ast.parse(src)):
                mods = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module] if isinstance(n, ast.ImportFrom) and n.module and not n.level else []
                for m in (m.split(".")[0] for m in mods):
                    if m in sys.stdlib_module_names or m == "labelup": continue
                    if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & have: missing.add((name, m))
    assert not missing, f"result notebooks import packages neither the base install nor [notebooks] brings: {sorted(missing)}"


def test_wheel_installs_and_runs_outside_repo(wheel):
    tmp, whl = wheel
    site = _install(whl, tmp / "site")
    away = tmp / "elsewhere"; away.mkdir()
    env = wheel_env(site)
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


def test_reproduce_finds_the_notebooks_the_wheel_carries(wheel):
    "From an empty folder, with only the wheel on the path, `reproduce` runs the notebooks the wheel carries (`tests/test_reproduce.py` runs the whole smoke reproduction this way)."
    tmp, whl = wheel
    site = _install(whl, tmp / "site2")
    away = tmp / "empty"; away.mkdir()
    r = subprocess.run([sys.executable, "-c", "from labelup.paper.reproduce import find_notebooks; print(find_notebooks())"],
                       cwd=away, env=wheel_env(site), capture_output=True, text=True, timeout=300)
    assert r.stdout.strip() == str(site / "labelup" / "nbs"), r.stdout + r.stderr


def _version() -> str:
    import tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
