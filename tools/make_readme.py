"""Write README.md from nbs/index.ipynb without quarto: execute the notebook, then convert it to markdown.

Usage: python tools/make_readme.py [--check]   (--check: exit 1 if README.md is out of date)
"""
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbconvert import MarkdownExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent


def render() -> str:
    nb = nbformat.read(ROOT / "nbs" / "index.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "nbs")}}).execute()
    for c in nb.cells:  # nbdev directives: drop hidden cells and the code of `echo: false` cells
        src = c.source
        if "#| hide" in src: c.metadata.setdefault("tags", []).append("remove-cell")
        if "#| echo: false" in src: c.metadata.setdefault("tags", []).append("remove-input")
    cfg = Config()
    cfg.TagRemovePreprocessor.remove_cell_tags = ("remove-cell",)
    cfg.TagRemovePreprocessor.remove_input_tags = ("remove-input",)
    cfg.TagRemovePreprocessor.enabled = True
    body, _ = MarkdownExporter(config=cfg).from_notebook_node(nb)
    head = "<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file -->\n\n"
    return head + body.strip() + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if (ROOT / "README.md").read_text() == text else 1)
    (ROOT / "README.md").write_text(text)
    print("README.md written")
