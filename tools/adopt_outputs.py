#!/usr/bin/env python
"""Copy the outputs of notebooks executed by `labelup reproduce` into the committed notebooks in `nbs/`,
so the docs show the tables and figures of a real run (e.g. the `synthetic` profile) instead of a smoke run.

    python tools/adopt_outputs.py runs/synthetic/notebooks [--nbs nbs] [names ...]
    nbdev-clean

Only outputs move: every code cell of `nbs/<name>.ipynb` must have a cell with exactly the same source in
the executed copy (papermill's `injected-parameters` cell is ignored), otherwise the notebook is refused,
so a notebook edited after the run never gets outputs its code did not produce. A markdown cell right
after the `parameters` cell says which profile and which run produced the outputs.
"""
from __future__ import annotations

import argparse, json, sys
from pathlib import Path

MARK = "adopted-outputs"  # tag of the note cell (replaced on the next adoption)


def _src(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _tags(cell) -> list:
    return cell.get("metadata", {}).get("tags", [])


def injected_parameters(executed: dict) -> dict:
    "The parameters papermill injected (name -> source line), from its `injected-parameters` cell."
    out = {}
    for c in executed["cells"]:
        if "injected-parameters" in _tags(c):
            for line in _src(c).splitlines():
                if "=" in line and not line.lstrip().startswith("#"):
                    k, v = line.split("=", 1); out[k.strip()] = v.strip()
    return out


def _run_source(cell) -> str:
    "The cell's code as `labelup reproduce` runs it (`runnable_cell`: the export line taken out); '' for a cell it drops."
    from labelup.paper.reproduce import runnable_cell
    r = runnable_cell(cell)
    return "" if r is None else _src(r).rstrip()


def adopt(target: Path, executed: Path, note: str | None = None) -> dict:
    "Copy outputs from `executed` into `target` (same code, cell by cell); returns counts. Raises on any mismatch."
    nb, ex = json.loads(target.read_text()), json.loads(executed.read_text())
    pool = {}
    for c in ex["cells"]:
        if c["cell_type"] == "code" and "injected-parameters" not in _tags(c):
            pool.setdefault(_run_source(c), []).append(c)
    run = lambda c: c["cell_type"] == "code" and _run_source(c) != ""
    missing = [_src(c)[:80] for c in nb["cells"] if run(c) and not pool.get(_run_source(c))]
    if missing:
        raise ValueError(f"{target.name}: {len(missing)} code cells differ from the executed copy {executed} "
                         f"(edited after the run?), e.g. {missing[0]!r}; rerun the notebook first")
    n_out = 0
    for c in nb["cells"]:
        if not run(c): continue
        e = pool[_run_source(c)].pop(0)
        c["outputs"] = e.get("outputs", []); c["execution_count"] = e.get("execution_count")
        n_out += bool(c["outputs"])
    nb["cells"] = [c for c in nb["cells"] if MARK not in _tags(c)]
    if note:
        i = next((i for i, c in enumerate(nb["cells"]) if "parameters" in _tags(c)), 0)
        nb["cells"].insert(i + 1, {"cell_type": "markdown", "metadata": {"tags": [MARK]}, "source": note})
    tmp = target.with_suffix(".tmp.ipynb")
    tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n"); tmp.replace(target)
    return {"notebook": target.name, "cells_with_output": n_out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("executed", help="folder of executed notebooks (RUN/notebooks)")
    ap.add_argument("names", nargs="*", help="notebook names (default: every executed notebook)")
    ap.add_argument("--nbs", default=str(Path(__file__).resolve().parent.parent / "nbs"))
    a = ap.parse_args(argv)
    ex_dir = Path(a.executed)
    names = a.names or sorted(p.stem for p in ex_dir.glob("*.ipynb") if not p.name.startswith("."))
    for n in names:
        ex = ex_dir / f"{n}.ipynb"
        params = injected_parameters(json.loads(ex.read_text()))
        prof = params.get("profile", "?").strip("'\"")
        note = (f"> **The outputs on this page come from a `{prof}`-profile run** (`labelup reproduce --profile {prof}`, "
                "papermill set the parameters above to `" + ", ".join(f"{k} = {v}" for k, v in params.items()
                                                                       if k in ("profile", "device")) +
                "`). Run the notebook yourself and it starts from the `smoke` defaults; the test suite does the same.")
        print(adopt(Path(a.nbs) / f"{n}.ipynb", ex, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
