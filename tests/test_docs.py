"""The docs site: `python tools/build_docs.py` builds it offline into `_docs/`; headless Chromium checks it.

The browser half runs where `/usr/bin/chromium` exists (CI installs Debian's chromium) and leaves
`_docs/screenshot.png` (landing page), `_docs/screenshot-api.png` and, when a notebook has figures,
`_docs/screenshot-figure.png` for a person to look at.
"""
import importlib.util, json, os, re, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

needs_jb = pytest.mark.skipif(importlib.util.find_spec("jupyter_book") is None or importlib.util.find_spec("myst_nb") is None,
                              reason="jupyter-book 1.x / myst-nb not installed (pip install -e '.[dev]')")


def test_convert_directives():
    "The quarto-only `#|` directives become Jupyter Book cell tags; show_doc output becomes markdown without `---`."
    import build_docs as bd
    nb = {"cells": [
        {"cell_type": "raw", "metadata": {}, "source": "---\ntitle: 'A: b'\ndescription: first line\n---\n"},
        {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "execute_result", "metadata": {}, "execution_count": 1,
         "data": {"text/markdown": ["---\n", "\n", "### get_thing\n", "\n", "```python\ndef get_thing()\n```"], "text/plain": ["x"]}}],
         "source": "#| echo: false\n#| output: asis\nshow_doc(get_thing)"},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [], "source": "#| echo: false\nx = 1"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "source": "#| output: false\ny = 2"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "source": "#| include: false\nz = 3"},
        {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR", "text/plain": ["<Figure>"]}}],
         "source": "plt.plot([1])"},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    out, stats = bd.convert_nb(nb, "00_x", description="first line and the second")
    cells = out["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# A: b") and "and the second" in cells[0]["source"]
    assert cells[1]["cell_type"] == "markdown" and cells[1]["source"].startswith("### get_thing")  # no leading ---
    assert cells[2]["metadata"]["tags"] == ["parameters", "remove-input"] and cells[2]["source"] == "x = 1"
    assert cells[3]["metadata"]["tags"] == ["remove-output"]
    assert cells[4]["metadata"]["tags"] == ["remove-cell"]
    assert stats["api"] == ["get_thing"] and stats["images"] == 1 and stats["title"] == "A: b"
    assert bd._section("11_student") == "Stage 3: the segmentation student" and bd._section("docs/scale-out") == "Command line and guides"
    assert bd._section("42_new") == "More"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    import build_docs as bd
    out = ROOT / "_docs"  # CI keeps this folder (site + screenshots) as an artefact
    man = bd.build(out, tmp_path_factory.mktemp("jb"), quiet=True)
    return out, man


@needs_jb
def test_site_builds(site):
    out, man = site
    pages = man["pages"]
    assert (out / "index.html").exists()
    nbs = sorted(p.stem for p in (ROOT / "nbs").glob("*.ipynb") if not p.stem.startswith(("_", ".")))
    for nb in nbs: assert (out / f"{nb}.html").exists(), f"no page for nbs/{nb}.ipynb"
    for md in (ROOT / "docs").glob("*.md"): assert (out / "docs" / f"{md.stem}.html").exists()
    assert "get_profile" in pages["00a_config"]["api"], pages["00a_config"]["api"]
    toc = (out / "index.html").read_text()
    for caption in {p["section"] for p in pages.values() if p["section"]}:
        assert caption.split(":")[0] in toc, f"sidebar lacks the section {caption!r}"
    assert not man["proc_errors"], "nbdev could not render the API docs (show_doc) of: " + "\n\n".join(
        f"{k}:\n{v}" for k, v in man["proc_errors"].items()) + "\n(nbdev runs every cell containing an import: keep imports in their own cells)"


@needs_jb
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists() and not os.environ.get("CHROMIUM"),
                    reason="/usr/bin/chromium missing (CI installs it: apt-get install chromium)")
def test_site_in_chromium(site):
    import check_docs
    out, man = site
    rep = check_docs.check_site(out)
    assert rep["n_pages"] == len(man["pages"])
    assert not rep["failed"], json.dumps(rep["failed"], indent=1)
    core = next(r for r in rep["pages"] if r["page"] == "00a_config")
    assert core["ok"] and core["n_api"] >= 5
    dom = check_docs.dump_dom(out / "00a_config.html")
    assert re.search(r"def\s+get_profile\s*\(", check_docs._text(dom)), "get_profile's signature is not on the configuration page"
    n_figs = sum(p["images"] for p in man["pages"].values())
    assert rep["n_img"] >= n_figs
    assert rep["n_math"] > 0, "no formula found on any page (the engine and teacher pages have some)"
    for png in rep["screenshots"].values(): assert Path(png).stat().st_size > 10_000, png
    # the landing page shows its two tables (the claims and the profiles) as tables; _docs/screenshot.png shows them
    landing = check_docs.dump_dom(out / "index.html")
    assert len(re.findall(r"<table\b", landing)) >= 2 and not check_docs._PIPE_TABLE.search(check_docs._text(landing))


def test_quarto_config(tmp_path):
    "`nbdev-docs` (where quarto exists) reads nbs/_quarto.yml and nbs/sidebar.yml, which lists every notebook."
    import yaml, build_docs as bd
    q = yaml.safe_load((ROOT / "nbs" / "_quarto.yml").read_text())
    assert q["project"]["type"] == "website" and "sidebar.yml" in q["metadata-files"]
    fresh = bd.write_quarto_sidebar(tmp_path / "sidebar.yml").read_text()
    assert (ROOT / "nbs" / "sidebar.yml").read_text() == fresh, "nbs/sidebar.yml is stale: run `python tools/build_docs.py --sidebar`"


def test_scale_out_guide_uses_real_options(capsys):
    "Every `labelup <command> --option` in docs/*.md exists in that command's --help."
    from labelup.cli import main, COMMANDS
    for md in (ROOT / "docs").glob("*.md"):
        text = md.read_text().replace("\\\n", " ")
        for cmd, rest in re.findall(r"\blabelup ([a-z][a-z-]+)((?:[ \t]+[^\n#]*)?)", text):
            if cmd not in COMMANDS or cmd == "reproduce" and not rest.strip(): continue
            argv = [cmd]
            if cmd == "bench":   # `labelup bench NAME ...`: the options are NAME's
                name, _, rest = rest.strip().partition(" ")
                argv.append(name.strip("`.,;:"))
            with pytest.raises(SystemExit):
                main([*argv, "--help"])
            helptext = capsys.readouterr().out
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
                assert flag in helptext, f"{md.name}: `labelup {cmd}` has no option {flag}"


def test_docs_check_catches_planted_defects(tmp_path):
    "The docs check fails on a raw pipe table, an absolute path and a figure with a flat panel, and passes a clean page."
    import numpy as np
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import check_docs as cd
    fig, ax = plt.subplots(1, 2, figsize=(6, 3))
    ax[0].imshow(np.random.default_rng(0).random((32, 32)), cmap="gray"); ax[1].imshow(np.zeros((32, 32)), cmap="gray")
    fig.savefig(tmp_path / "flat.png"); plt.close(fig)
    fig, ax = plt.subplots(1, 2, figsize=(6, 3))
    for a in ax: a.imshow(np.random.default_rng(1).random((32, 32)), cmap="gray")
    fig.savefig(tmp_path / "ok.png"); plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 3)); ax.plot([0, 1], [0, 1]); fig.savefig(tmp_path / "line.png"); plt.close(fig)
    bad = ("<p>| claim | paper |</p><p>|\u2014|\u2014|</p><p>Fig. 3: /work/me/runs/synthetic/results/fig3.png</p>"
           '<img src="flat.png">')
    probs = cd.content_problems(bad, tmp_path)
    assert any("raw `|` text" in p for p in probs) and any("absolute path" in p for p in probs), probs
    assert any("flat.png: 1 panel" in p for p in probs), probs
    printed = ('<div class="cell_output docutils container"><div class="output stream highlight-myst-ansi notranslate">'
               '<div class="highlight"><pre><span></span>Table I\n\n| a | b |\n|---|---|\n| 1 | 2 |\n</pre></div></div></div>')
    assert any("printed as text in a cell output" in p for p in cd.content_problems(printed, tmp_path))
    good = ('<table><tr><td>a</td></tr></table><pre>| a | b |\n|---|---|</pre><p>see runs/synthetic/results</p>'
            '<img src="ok.png"><img src="line.png">')
    assert cd.content_problems(good, tmp_path) == []
