#!/usr/bin/env python
"""Build the labelup documentation site offline into `_docs/`, without quarto.

    python tools/build_docs.py            # -> _docs/index.html
    python tools/build_docs.py --out DIR  # somewhere else

Steps (see `CONTRIBUTING.md` and the tooling notes):

1. `nbdev.serve.proc_nbs()` - nbdev's own pre-processing, the same as `nbdev-docs` uses before quarto:
   it runs `show_doc` for every exported function/class (the API docs), drops `#| hide` cells and the
   exported code, and writes the processed notebooks into `_proc/` (frontmatter in a raw cell). To render
   `show_doc` nbdev executes the exported cells and import cells; cells that mix imports with test code
   and `#| slow` cells are not executed here (nbdev would: see `_api_only_defaults`).
2. What quarto would do with the remaining `#|` directives is done here on those notebooks: a
   `show_doc` cell (`#| output: asis`) becomes a markdown cell holding its markdown (without the leading
   `---` rule, which docutils cannot place), `echo: false` -> `remove-input`, `output: false` ->
   `remove-output`, `include: false` -> `remove-cell` cell tags; the frontmatter becomes the page title.
3. Jupyter Book 1.x (Sphinx + myst-nb + sphinx-book-theme) with execution off, so every notebook shows
   its committed outputs (tables, figures), and a table of contents that follows the paper's sections.

The landing page is `nbs/index.ipynb` (or `README.md` while there is none); `docs/*.md` are extra pages
(e.g. `docs/scale-out.md`); a results folder written by `labelup reproduce` (`--results DIR`, default
`results/synthetic/`, `results/` or `runs/synthetic/results/`, the first present) becomes the "Results" page with every table and figure. Everything works offline. Where quarto exists, `nbdev-docs` still builds the
nbdev-style site from `nbs/_quarto.yml` and `nbs/sidebar.yml`.
"""
from __future__ import annotations

import argparse, copy, fnmatch, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The table of contents: (caption, notebook/page name patterns). First match wins; anything not matched
# lands in "More" so a new notebook is never silently missing from the site.
SECTIONS = [
    ("Data: DICOM, labels, the cache", ["docs/data", "00_*", "00[a-z]_*", "01_*", "01[a-z]_*", "02_*", "02[a-z]_*", "03_*", "04_*", "04[a-z]_*"]),
    ("Stage 1: slice classifier", ["05_*", "06_*"]),
    ("Stage 2: the explainability teacher", ["07_*", "08_*", "09_*", "09[a-z]_*", "10_*"]),
    ("Stage 3: the segmentation student", ["11_*", "12_*", "13_*", "14_*"]),
    ("Results: the paper's tables and figures", ["20_*", "21_*", "22_*", "22[a-z]_*", "23_*", "24_*", "28_*", "results/*"]),
    ("Benchmarks", ["25_*", "26_*", "27_*", "29_*"]),
    ("Command line and guides", ["99_*", "docs/*"]),
]

DIRECTIVE = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")
TAG_FOR = {("echo", "false"): "remove-input", ("output", "false"): "remove-output",
           ("include", "false"): "remove-cell"}


def _src(cell) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else (s or "")


def _strip_rule(md: str) -> str:
    "show_doc markdown starts with a `---` rule that trips docutils (`visit_transition`): drop it."
    return re.sub(r"\A\s*---\s*\n", "", md)


def _frontmatter(cell) -> dict:
    import yaml
    s = _src(cell).strip()
    if not s.startswith("---"): return {}
    body = s.strip("-\n ")
    try: return yaml.safe_load(body) or {}
    except Exception: return {}


def _full_description(src_nb: Path) -> str | None:
    "nbdev keeps only the first line of a multi-line `> description`; read all of it from the source notebook."
    try: cells = json.loads(src_nb.read_text())["cells"]
    except Exception: return None
    for c in cells:
        if c["cell_type"] != "markdown": continue
        lines = _src(c).splitlines()
        if not lines or not lines[0].startswith("# "): return None
        quote = [l.lstrip("> ").rstrip() for l in lines[1:] if l.startswith(">")]
        return " ".join(q for q in quote if q) or None
    return None


def convert_nb(nb: dict, name: str, description: str | None = None) -> tuple[dict, dict]:
    """Turn one nbdev-processed notebook into one Jupyter Book reads; returns (notebook, stats).

    stats: `api` (show_doc headings kept), `images` (image outputs kept visible), `title`."""
    nb = copy.deepcopy(nb)
    cells, api, images, title = [], [], 0, None
    for cell in nb.get("cells", []):
        src = _src(cell)
        if cell["cell_type"] == "raw":
            fm = _frontmatter(cell)
            if fm:
                title = str(fm.get("title") or name)
                desc = str(fm.get("description") or "").strip()
                if description and description.startswith(desc): desc = description
                md = f"# {title}\n" + (f"\n> {desc}\n" if desc else "")
                cells.append({"cell_type": "markdown", "metadata": {}, "source": md})
                continue
        if cell["cell_type"] == "markdown":
            if src.lstrip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"): continue
            if title is None and src.lstrip().startswith("# "): title = src.lstrip()[2:].splitlines()[0].strip()
            cells.append(cell); continue
        if cell["cell_type"] != "code": cells.append(cell); continue
        lines = src.splitlines()
        opts, body = {}, []
        for i, l in enumerate(lines):
            m = DIRECTIVE.match(l)
            if m and all(DIRECTIVE.match(x) or not x.strip() for x in lines[:i]): opts[m.group(1)] = m.group(2).lower()
            else: body.append(l)
        outs = cell.get("outputs", [])
        if opts.get("output") == "asis":  # show_doc and other markdown-as-is outputs -> markdown cells
            mds = []
            for o in outs:
                t = o.get("data", {}).get("text/markdown") if isinstance(o.get("data"), dict) else None
                if t is not None: mds.append(_strip_rule("".join(t) if isinstance(t, list) else t))
                elif o.get("output_type") == "stream": mds.append("".join(o.get("text", "")))
            for md in mds:
                api += re.findall(r"^#{2,4}\s+(\S+)", md, flags=re.M)
                cells.append({"cell_type": "markdown", "metadata": {}, "source": md})
            continue
        tags = list(cell.get("metadata", {}).get("tags", []))
        for (k, v), tag in TAG_FOR.items():
            if opts.get(k) == v and tag not in tags: tags.append(tag)
        cell = dict(cell, source="\n".join(body).strip("\n"))
        cell["metadata"] = {"tags": tags} if tags else {}
        for o in outs:  # markdown outputs (e.g. show_doc without asis) also lose the leading rule
            d = o.get("data")
            if isinstance(d, dict) and "text/markdown" in d:
                t = d["text/markdown"]; d["text/markdown"] = _strip_rule("".join(t) if isinstance(t, list) else t)
        if not ({"remove-output", "remove-cell"} & set(tags)):
            images += sum(1 for o in outs if isinstance(o.get("data"), dict)
                          and ({"image/png", "image/jpeg", "image/svg+xml"} & set(o["data"])))
        if not cell["source"].strip() and not outs: continue
        cells.append(cell)
    nb["cells"] = cells
    nb.setdefault("metadata", {})["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb["metadata"].pop("widgets", None)
    return nb, {"api": api, "images": images, "title": title or name}


def _section(name: str) -> str:
    for cap, pats in SECTIONS:
        if any(fnmatch.fnmatch(name, p) for p in pats): return cap
    return "More"


def write_book(src: Path, pages: list[str], root_page: str, title: str):
    "Write Jupyter Book's `_config.yml` and `_toc.yml` (paper-section parts)."
    import yaml
    parts = {}
    for p in pages:
        if p == root_page: continue
        parts.setdefault(_section(p), []).append(p)
    order = [c for c, _ in SECTIONS] + ["More"]
    toc = {"format": "jb-book", "root": root_page,
           "parts": [{"caption": c, "chapters": [{"file": f} for f in parts[c]]} for c in order if c in parts]}
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    cfg = {
        "title": title, "author": "labelup developers", "copyright": "2026",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        "html": {"use_repository_button": False, "use_issues_button": False, "use_edit_page_button": False,
                 "home_page_in_navbar": True},
        "launch_buttons": {"notebook_interface": "classic", "binderhub_url": "", "thebe": False},
        "parse": {"myst_enable_extensions": ["colon_fence", "dollarmath", "deflist", "html_image"]},
        # MathJax from the local wheel `sphinx-mathjax-offline` (copied into _static/), not from a CDN: the site
        # is read offline and the browser check has no network.
        "sphinx": {"extra_extensions": ["sphinx-mathjax-offline"], "config": {"suppress_warnings": ["myst.header", "mystnb.unknown_mime_type", "misc.highlighting_failure"],
                              "nb_merge_streams": True, "html_show_sourcelink": False,
                              # text/markdown outputs (the landing page's tables) parsed as MyST, which has tables;
                              # myst-nb's default, CommonMark, has none and showed them as raw `|` text
                              "nb_render_markdown_format": "myst",
                              "html_theme_options": {"show_toc_level": 2, "navigation_with_keys": False}}},
    }
    (src / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def _api_only_defaults():
    """nbdev's `FilterDefaults` whose `show_doc` execution runs only what API docs need.

    nbdev executes exported cells, `exec_doc` cells and *every cell that contains an import*, including test
    cells that mix an import with other code (nbdev warns "Found cells containing imports and other code"),
    and `#| slow` cells: building the docs would then rerun experiments. Here such mixed cells, and `slow` /
    `eval: false` cells, are left out; exported cells, import-only cells and `show_doc` calls still run."""
    import ast
    from nbdev.processors import FilterDefaults, exec_show_docs

    class ExecApiOnly(exec_show_docs):
        def __call__(self, cell):
            if cell.cell_type == "code" and cell.source:
                d = getattr(cell, "directives_", {}) or {}
                if d.keys() & {"slow"} or str(d.get("eval", [""])[0] if isinstance(d.get("eval"), list) else d.get("eval", "")).lower() == "false":
                    return
                if not d.keys() & {"export", "exports", "exporti", "exec_doc"}:
                    try: trees = cell.parsed_()
                    except Exception: trees = None
                    if trees and not all(isinstance(t, (ast.Import, ast.ImportFrom)) or
                                         (isinstance(t, ast.Expr) and getattr(getattr(t.value, "func", None), "id", None) == "show_doc")
                                         for t in trees):
                        return
            return super().__call__(cell)

    class ApiOnlyDefaults(FilterDefaults):
        def base_procs(self): return [ExecApiOnly if p is exec_show_docs else p for p in super().base_procs()]
    return ApiOnlyDefaults


def preprocess() -> tuple[Path, dict]:
    """nbdev's pre-processing into `_proc/`: `nbdev.serve.proc_nbs()`. If a notebook breaks it (nbdev runs
    every cell that imports something to render `show_doc`, so a cell mixing imports with test code fails
    out of context), redo it notebook by notebook and render the broken ones without executing `show_doc`;
    returns (`_proc` folder, {notebook: error}) so the caller can report the pages that lack API docs."""
    import nbdev.serve, nbdev.serve_drv
    from nbdev.config import get_config
    from nbdev.processors import FilterDefaults, exec_show_docs
    Defaults = _api_only_defaults()
    orig = nbdev.serve.FilterDefaults
    nbdev.serve.FilterDefaults = Defaults  # what proc_nbs hands to its (in-process, n_workers=0) driver
    try: return Path(nbdev.serve.proc_nbs(n_workers=0, force=True)), {}
    except Exception as e: first = e
    finally: nbdev.serve.FilterDefaults = orig
    cfg = get_config()
    cache, nbs = cfg.config_path / "_proc", Path(cfg.nbs_path)

    class NoShowDocExec(FilterDefaults):
        def base_procs(self): return [p for p in super().base_procs() if p is not exec_show_docs]
    FilterDefaults = Defaults

    errors = {}
    for s in sorted(nbs.rglob("*.ipynb")):
        rel = s.relative_to(nbs)
        if any(p.startswith(("_", ".")) for p in rel.parts): continue
        d = cache / rel; d.parent.mkdir(parents=True, exist_ok=True)
        try: nbdev.serve_drv.main((s, d, FilterDefaults))
        except Exception as e:
            errors[rel.with_suffix("").as_posix()] = str(e).strip()[-1500:]
            nbdev.serve_drv.main((s, d, NoShowDocExec))
    if not errors: errors["(proc_nbs)"] = str(first)[-1500:]
    return cache, errors


RESULTS_CANDIDATES = ["results/synthetic", "results", "runs/synthetic/results"]  # looked up (relative to the repo) when --results is not given


def _results_dir(results=None) -> Path | None:
    "The results folder to publish: `results` if given (must hold README.md), else the first candidate that has one."
    if results is not None:
        r = Path(results)
        if not (r / "README.md").exists(): raise FileNotFoundError(f"{r}: no README.md (run `labelup reproduce` first)")
        return r
    return next((ROOT / c for c in RESULTS_CANDIDATES if (ROOT / c / "README.md").exists()), None)


def build(out: str | Path = ROOT / "_docs", work: str | Path = ROOT / "_build" / "docs", quiet: bool = False,
          results: str | Path | None = None) -> dict:
    """Build the site into `out`; returns {"pages": {page: {title, api, images, section}}, "proc_errors": {...}},
    also saved as `out/manifest.json` (the docs test reads it)."""
    out, work = Path(out).resolve(), Path(work).resolve()
    t0 = time.time()
    os.chdir(ROOT)
    proc, proc_errors = preprocess()
    src = work / "src"
    if src.exists(): shutil.rmtree(src)
    src.mkdir(parents=True)
    manifest, pages = {}, []
    for f in sorted(proc.rglob("*.ipynb")):
        rel = f.relative_to(proc).with_suffix("")
        if any(p.startswith(("_", ".")) for p in rel.parts): continue
        name = rel.as_posix()
        nb, stats = convert_nb(json.loads(f.read_text()), name, _full_description(ROOT / "nbs" / f"{name}.ipynb"))
        dst = src / f"{name}.ipynb"; dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(json.dumps(nb, indent=1))
        pages.append(name); manifest[name] = dict(stats, section=_section(name) if name != "index" else "")
    missing = [p.stem for p in (ROOT / "nbs").glob("*.ipynb") if not p.stem.startswith(("_", ".")) and p.stem not in manifest]
    if missing: raise RuntimeError(f"nbdev's pre-processing produced no page for {missing}")
    if "index" not in manifest:  # landing page: the README until nbs/index.ipynb exists
        readme = (ROOT / "README.md").read_text() if (ROOT / "README.md").exists() else "# labelup\n"
        (src / "index.md").write_text(readme)
        pages.insert(0, "index"); manifest["index"] = {"title": "labelup", "api": [], "images": 0, "section": ""}
    extra_md = sorted((ROOT / "docs").glob("*.md")) if (ROOT / "docs").exists() else []
    if (ROOT / "data" / "README.md").exists(): extra_md.append(ROOT / "data" / "README.md")   # how to obtain RSPECT
    for md in extra_md:
        name = f"docs/{md.stem if md.parent.name == 'docs' else 'data'}"
        (src / "docs").mkdir(exist_ok=True)
        shutil.copy2(md, src / f"{name}.md")
        title = next((l[2:].strip() for l in md.read_text().splitlines() if l.startswith("# ")), md.stem)
        pages.append(name); manifest[name] = {"title": title, "api": [], "images": 0, "section": _section(name)}
    res = _results_dir(results)
    if res is not None:  # the tables and figures of a reproduction run (labelup reproduce -> RUN/results/)
        dst = src / "results"; dst.mkdir(exist_ok=True)
        for f in res.iterdir():
            if f.suffix.lower() in (".md", ".png", ".csv", ".json") and f.is_file(): shutil.copy2(f, dst / f.name)
        text = (res / "README.md").read_text()
        title = next((l[2:].strip() for l in text.splitlines() if l.startswith("# ")), "Results")
        n_img = len(re.findall(r"!\[[^\]]*\]\((?!https?:)[^)]+\)", text))
        pages.append("results/README")
        manifest["results/README"] = {"title": title, "api": [], "images": n_img, "section": _section("results/README"),
                                      "source": str(res)}
    for extra in ("nbs/images", "images"):  # images referenced from markdown cells / README
        if (ROOT / extra).is_dir(): shutil.copytree(ROOT / extra, src / Path(extra).name, dirs_exist_ok=True)
    write_book(src, pages, "index", "labelup")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(src), "--path-output", str(work), "--builder", "html"]
    if quiet: cmd.append("--quiet")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-6000:] + r.stderr[-6000:])
        raise RuntimeError(f"jupyter-book build failed ({r.returncode})")
    html = work / "_build" / "html"
    if out.exists(): shutil.rmtree(out)
    shutil.copytree(html, out)
    (out / ".nojekyll").write_text("")
    (out / "manifest.json").write_text(json.dumps({"pages": manifest, "proc_errors": proc_errors}, indent=1))
    warnings = [l for l in (r.stdout + r.stderr).splitlines() if "WARNING" in l]
    if not quiet:
        print(f"built {len(manifest)} pages into {out} in {time.time() - t0:.0f} s "
              f"({sum(len(m['api']) for m in manifest.values())} API entries, "
              f"{sum(m['images'] for m in manifest.values())} figures, {len(warnings)} Sphinx warnings)")
        for w in warnings[:20]: print("  ", w)
        for nb, err in proc_errors.items():
            print(f"WARNING: nbdev could not render show_doc for {nb} (page built without API docs):\n{err}\n")
    return {"pages": manifest, "proc_errors": proc_errors}


def write_quarto_sidebar(path: Path = ROOT / "nbs" / "sidebar.yml") -> Path:
    """`nbs/sidebar.yml` for quarto (`nbdev-docs`), with the same paper-section grouping as this site.
    Pages outside `nbs/` (e.g. `docs/*.md`) are not part of the quarto project and are left out."""
    import yaml
    nbs = ROOT / "nbs"
    names = sorted(p.relative_to(nbs).with_suffix("").as_posix() for p in nbs.rglob("*.ipynb")
                   if not any(x.startswith(("_", ".")) for x in p.relative_to(nbs).parts))
    contents, parts = (["index.ipynb"] if "index" in names else []), {}
    for n in names:
        if n != "index": parts.setdefault(_section(n), []).append(f"{n}.ipynb")
    for cap in [c for c, _ in SECTIONS] + ["More"]:
        if cap in parts: contents.append({"section": cap, "contents": parts[cap]})
    path.write_text(yaml.safe_dump({"website": {"sidebar": {"contents": contents}}}, sort_keys=False))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/build_docs.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "_docs"), help="site folder (default: _docs/)")
    ap.add_argument("--work", default=str(ROOT / "_build" / "docs"), help="intermediate Jupyter Book sources/build")
    ap.add_argument("--check", action="store_true", help="afterwards, check the site in headless Chromium (tools/check_docs.py)")
    ap.add_argument("--results", default=None,
                    help="a `labelup reproduce` results folder (README.md, tables, figures) to publish as the "
                         f"'Results' page (default: the first of {RESULTS_CANDIDATES} that exists)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--sidebar", action="store_true", help="only (re)write nbs/sidebar.yml for quarto/nbdev-docs and exit")
    a = ap.parse_args(argv)
    if a.sidebar:
        print(f"wrote {write_quarto_sidebar()}"); return 0
    man = build(a.out, a.work, quiet=a.quiet, results=a.results)
    if a.check:
        sys.path.insert(0, str(ROOT / "tools"))
        import check_docs
        rep = check_docs.check_site(a.out)
        print(json.dumps({k: v for k, v in rep.items() if k != "pages"}, indent=1))
    print(f"open {Path(a.out).resolve() / 'index.html'}")
    return 1 if man["proc_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
