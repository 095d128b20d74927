"tools/adopt_outputs.py: outputs of an executed run move into the committed notebooks only when the code is identical."
import json, sys
from pathlib import Path
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import adopt_outputs as ao


def _nb(cells):
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

def _code(src, tags=(), outputs=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": src, "outputs": list(outputs), "execution_count": None}


def test_adopt(tmp_path):
    out = [{"output_type": "stream", "name": "stdout", "text": "AUROC 0.98\n"}]
    target = tmp_path / "nb.ipynb"; ex = tmp_path / "ex.ipynb"
    target.write_text(json.dumps(_nb([_code('profile = "smoke"', ["parameters"]), _code("print(1)"), _code("x = 2")])))
    ex.write_text(json.dumps(_nb([_code('profile = "smoke"', ["parameters"]),
                                  _code('profile = "synthetic"', ["injected-parameters"]),
                                  _code("print(1)", outputs=out), _code("x = 2")])))
    assert ao.injected_parameters(json.loads(ex.read_text())) == {"profile": '"synthetic"'}
    r = ao.adopt(target, ex, note="from synthetic")
    nb = json.loads(target.read_text())
    assert r["cells_with_output"] == 1 and nb["cells"][2]["outputs"] == out
    assert nb["cells"][1]["cell_type"] == "markdown" and nb["cells"][1]["source"] == "from synthetic"
    assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    ao.adopt(target, ex, note="again")  # the note is replaced, not repeated
    assert sum(c["cell_type"] == "markdown" for c in json.loads(target.read_text())["cells"]) == 1


def test_adopt_refuses_edited_code(tmp_path):
    target = tmp_path / "nb.ipynb"; ex = tmp_path / "ex.ipynb"
    target.write_text(json.dumps(_nb([_code("print(2)")])))
    ex.write_text(json.dumps(_nb([_code("print(1)", outputs=[{"output_type": "stream", "name": "stdout", "text": "1"}])])))
    before = target.read_text()
    with pytest.raises(ValueError, match="differ from the executed copy"):
        ao.adopt(target, ex)
    assert target.read_text() == before


def test_adopt_matches_what_reproduce_runs(tmp_path):
    "reproduce runs a notebook without its export line (`runnable_notebook`): a cell with only that line is dropped, a cell with more keeps the rest."
    from labelup.paper.reproduce import runnable_notebook
    out = [{"output_type": "stream", "name": "stdout", "text": "ok\n"}]
    target = tmp_path / "nb.ipynb"; ex = tmp_path / "ex.ipynb"
    cells = [_code("print(1)"), _code("#| hide\nimport os\nimport nbdev; nbdev.nbdev_export()"), _code("#| hide\nimport nbdev; nbdev.nbdev_export()")]
    target.write_text(json.dumps(_nb(cells)))
    run = runnable_notebook(target)
    assert len(run["cells"]) == 2                      # the export-only cell is not run
    run["cells"][0]["outputs"] = out
    ex.write_text(json.dumps(run))
    assert ao.adopt(target, ex)["cells_with_output"] == 1
    nb = json.loads(target.read_text())
    assert nb["cells"][0]["outputs"] == out and "nbdev_export" in "".join(nb["cells"][1]["source"]) and len(nb["cells"]) == 3
