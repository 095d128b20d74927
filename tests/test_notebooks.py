"""Run every notebook in `nbs/` as a test (nbdev's `test_nb`), one pytest test per notebook.

Cells flagged `#| slow` are skipped unless `LABELUP_SLOW=1` (see the README).
"""
import os
from pathlib import Path

import pytest
import nbdev.test as nbt  # imported as a module so pytest does not collect `test_nb`

NBS = Path(__file__).resolve().parent.parent / "nbs"
NOTEBOOKS = sorted(p for p in NBS.rglob("*.ipynb") if not any(part.startswith(("_", ".")) for part in p.relative_to(NBS).parts))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb):
    slow = os.environ.get("LABELUP_SLOW") == "1"
    ok, secs = nbt.test_nb(nb, skip_flags=[] if slow else ["slow"], force_flags=["slow"] if slow else None, cell_timeout=1200)
    assert ok, f"{nb.name} failed (see the traceback above)"
