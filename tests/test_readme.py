"""The README is generated from nbs/index.ipynb, and its two commands are the ones CI runs."""
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "make_readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, "README.md is out of date: run `python tools/make_readme.py`"


def test_readme_commands_match_ci():
    cmds = re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())
    assert len(cmds) == 2 and all(c.startswith("python3 -m venv .venv") for c in cmds)
    test_cmd = cmds[1].split("&&")[-1].strip()
    assert test_cmd in (ROOT / ".ci" / "run").read_text(), f"CI does not run the README's test command {test_cmd!r}"
    assert "labelup reproduce" in cmds[0]
