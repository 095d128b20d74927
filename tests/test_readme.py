"""The README is generated from nbs/index.ipynb, and its two commands are the ones CI runs."""
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, "README.md is out of date: run `python tools/make_readme.py`"


def test_readme_commands_match_ci():
    cmds = [c for c in re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)
            if c.startswith("python3 -m venv .venv")]
    assert len(cmds) == 2
    test_cmd = cmds[1].split("&&")[-1].strip()
    assert test_cmd in (ROOT / ".ci" / "run").read_text(), f"CI does not run the README's test command {test_cmd!r}"
    assert "labelup reproduce" in cmds[0]


def walkthrough_block() -> str:
    "The README's command walkthrough, taken from the landing notebook (the source of the README): the bash block that starts with RUN=."
    import json
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    blocks = [b for b in re.findall(r"```bash\n(.+?)\n```", md, re.S) if b.startswith("RUN=")]
    assert len(blocks) == 1, f"expected one walkthrough block starting with RUN=, found {len(blocks)}"
    return blocks[0]


def test_walkthrough_has_no_placeholders():
    block = walkthrough_block()
    assert "..." not in block and "<" not in block, block
    cmds = [l.split("#")[0].split() for l in block.splitlines()[1:] if l.strip()]
    assert {c[1] for c in cmds} >= {"phantom", "prepare", "train-classifier", "pseudo-label", "train-student", "segment",
                                    "evaluate", "finetune", "bench", "export-bundle"}


def test_walkthrough_runs_as_written(tmp_path):
    "The README's walkthrough, verbatim, from an empty folder: every command exits 0 and leaves its outputs."
    import json, os
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", walkthrough_block()], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    run = tmp_path / "runs" / "walkthrough"
    for f in ("classifier/model.pt", "student/model.pt", "scores.json", "bench_student.json", "finetune/results.json",
              "bundle/configs/inference.json", "bundle/models/model.safetensors"):
        assert (run / f).is_file(), f
    assert len(list((run / "teacher").glob("*.nii.gz"))) == len(list((run / "cache").glob("*/image.nii.gz"))) == 8
    pats = sorted((run / "patients").iterdir())
    assert len(pats) == 8 and all((p / "seg.dcm").is_file() and (p / "pes.csv").is_file() for p in pats)
    scores = json.loads((run / "scores.json").read_text())
    assert scores["n_studies"] > 0 and scores["tp"] + scores["fn"] > 0, scores
