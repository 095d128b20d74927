"Every notebook's `parameters` cell parses with papermill, and the result notebooks take every parameter `labelup reproduce` passes."
import json, logging
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = sorted(p for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_"))


def _params_cell(nb):
    return next((c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), None)


@pytest.mark.parametrize("path", NBS, ids=[p.stem for p in NBS])
def test_parameters_parse(path, caplog):
    from papermill.translators import PythonTranslator
    cell = _params_cell(json.loads(path.read_text()))
    if cell is None: pytest.skip("no parameters cell")
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    with caplog.at_level(logging.WARNING, logger="papermill"):
        params = PythonTranslator.inspect({"source": src})
    assigned = [l.split("=")[0].strip() for l in src.splitlines() if l.strip() and not l.lstrip().startswith("#") and "=" in l]
    assert [p.name for p in params] == assigned, f"papermill could not parse some lines: {caplog.text}"


def test_result_notebooks_take_reproduce_parameters():
    from labelup.paper.reproduce import RESULT_NOTEBOOKS
    passed = {"profile", "run_dir", "data_root", "device", "overrides"}  # what reproduce() passes
    for name, _ in RESULT_NOTEBOOKS:
        src = _params_cell(json.loads((ROOT / "nbs" / f"{name}.ipynb").read_text()))["source"]
        src = "".join(src) if isinstance(src, list) else src
        names = {l.split("=")[0].strip() for l in src.splitlines() if "=" in l and not l.lstrip().startswith("#")}
        assert passed <= names, f"{name}: no parameter {sorted(passed - names)}"


def test_result_notebooks_skip_their_export_cell():
    "papermill runs a result notebook in its run folder, outside the project: its `nbdev_export` cell is tagged skip-execution."
    from labelup.paper.reproduce import OPTIONAL_NOTEBOOKS, RESULT_NOTEBOOKS
    for name, _ in RESULT_NOTEBOOKS + OPTIONAL_NOTEBOOKS:
        for c in json.loads((ROOT / "nbs" / f"{name}.ipynb").read_text())["cells"]:
            if "nbdev_export()" in "".join(c["source"]):
                assert "skip-execution" in c.get("metadata", {}).get("tags", []), name
