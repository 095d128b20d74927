#!/usr/bin/env python
"""Check the built docs site (`python tools/build_docs.py`) in headless Chromium.

    python tools/check_docs.py [_docs]      # prints a report, exits 1 on a failed check

For every page of the site's manifest, Chromium loads the page (`--dump-dom`, so scripts have run) and
the check asserts: the page rendered (theme, title, article), every API entry nbdev's `show_doc` produced
for it is there as a heading, it shows at least as many `<img>` as the notebook has committed figures and
each image file exists, every formula was typeset by a local MathJax (no CDN), and the sidebar links
every page. A screenshot of the landing page and of the
first page with API docs (and of the first page with a figure) is written into the site folder
(`screenshot.png`, `screenshot-api.png`, `screenshot-figure.png`).
"""
from __future__ import annotations

import html, json, os, re, shutil, subprocess, sys, tempfile
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]


def find_chromium() -> str | None:
    "The Chromium binary ($CHROMIUM, /usr/bin/chromium, or chromium/chromium-browser on PATH)."
    for c in (CHROMIUM, shutil.which("chromium"), shutil.which("chromium-browser")):
        if c and Path(c).exists(): return c
    return None


def chromium(args: list[str], url: str, timeout: float = 60) -> subprocess.CompletedProcess:
    "Run headless Chromium once on `url` with a new empty profile."
    exe = find_chromium()
    if exe is None: raise FileNotFoundError("chromium not found (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="labelup-chromium-") as prof:
        cmd = [exe, *FLAGS, f"--user-data-dir={prof}", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def dump_dom(path: Path) -> str:
    "The DOM of a local page after its scripts ran."
    r = chromium(["--dump-dom", "--virtual-time-budget=3000"], Path(path).resolve().as_uri())
    if r.returncode != 0: raise RuntimeError(f"chromium failed on {path}: {r.stderr[-2000:]}")
    return r.stdout


def screenshot(path: Path, png: Path, size=(1280, 1500)) -> Path:
    "A PNG of a local page as a person would see it."
    png = Path(png).resolve()
    r = chromium([f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=3000"],
                 Path(path).resolve().as_uri())
    if r.returncode != 0 or not png.exists(): raise RuntimeError(f"screenshot failed: {r.stderr[-2000:]}")
    return png


def _text(dom: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


_PIPE_TABLE = re.compile(r"\|\s*(?:-{3,}|\u2014+|:?-+:?)\s*\|")   # a `|---|` row (or its `|—|` smart-dash form) left as text
_ABS_PATH = re.compile(r"(?<![\w.~-])/(?:tmp|home|root|work|Users|mnt|private|var/folders|scratch)/[\w.-]+")


def flat_panels(png: Path, min_side: int = 24) -> int:
    """How many panels of a figure are one flat colour: each image area (a block of rows and columns that are at
    least 90% non-white, found between white gutters) whose pixels all have the same colour."""
    import numpy as np
    from matplotlib import image as mpimg
    a = mpimg.imread(str(png))[..., :3]
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    ink = (a < 0.97).any(-1)                                  # not white
    cols = ink.mean(0) > 0.05
    n, x = 0, 0
    while x < len(cols):                                      # vertical strips between white gutters
        if not cols[x]: x += 1; continue
        x0 = x
        while x < len(cols) and cols[x]: x += 1
        strip = ink[:, x0:x]; rows = np.nonzero(strip.mean(1) > 0.9)[0]
        if len(rows) >= min_side and x - x0 >= min_side:
            sub = strip[rows.min():rows.max() + 1]
            cc = np.nonzero(sub.mean(0) > 0.9)[0]
            if len(cc) >= min_side:
                box = a[rows.min():rows.max() + 1, x0 + cc.min():x0 + cc.max() + 1]
                inner = box[2:-2, 2:-2] if min(box.shape[:2]) > 8 else box   # skip the axes' frame
                if inner.size and float(inner.reshape(-1, 3).std(0).max()) < 1e-3: n += 1
    return n


def content_problems(article: str, page_dir: Path) -> list[str]:
    "What a reader would see as broken in a page's article: raw pipe tables, absolute paths, figures with flat panels."
    problems = []
    prose = re.sub(r"<(pre|code)\b.*?</\1>", " ", article, flags=re.S)        # code may show a table's source
    text = _text(prose)
    if _PIPE_TABLE.search(text): problems.append("a markdown table shown as raw `|` text (not rendered as a table)")
    # a cell's printed output (a stream) is shown verbatim: a table printed there is raw text too (display it as Markdown)
    printed = " ".join(re.findall(r'<div class="output stream[^"]*">.*?</pre>', article, flags=re.S))
    if _PIPE_TABLE.search(_text(printed)): problems.append("a markdown table printed as text in a cell output (display it as Markdown)")
    # paths in code (cell inputs, fenced examples such as `RUN=/scratch/...`) are the author's; outputs and prose are checked
    shown = re.sub(r'<div class="highlight-[^"]*">.*?</pre>', " ", article, flags=re.S)
    paths = sorted(set(_ABS_PATH.findall(_text(re.sub(r"<code\b.*?</code>", " ", shown, flags=re.S)))))
    if paths: problems.append(f"absolute path(s) on the page: {paths[:3]}")
    for src in re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", article):
        f = page_dir / src.split("#")[0].split("?")[0]
        if src.startswith(("http:", "https:", "data:")) or not f.exists() or f.suffix.lower() != ".png": continue
        k = flat_panels(f)
        if k: problems.append(f"figure {f.name}: {k} panel(s) of one flat colour (nothing drawn)")
    return problems


def check_page(site: Path, page: str, info: dict, pages: dict) -> dict:
    "Load one page in Chromium and check it; returns {page, ok, problems, n_img, n_api}."
    f = site / f"{page}.html"
    problems = []
    if not f.exists(): return {"page": page, "ok": False, "problems": [f"{f.name} missing"], "n_img": 0, "n_api": 0}
    dom = dump_dom(f)
    if "<article" not in dom or 'class="bd-article' not in dom and "bd-article" not in dom:
        problems.append("no rendered article (theme or page did not load)")
    body = re.search(r'<article[^>]*>(.*?)</article>', dom, flags=re.S)
    article = body.group(1) if body else dom
    heads = [_text(h).strip().rstrip("#¶ ").strip() for h in re.findall(r"<h[1-6][^>]*>(.*?)</h[1-6]>", article, flags=re.S)]
    head_words = {w for h in heads for w in h.split()}
    missing_api = [a for a in info.get("api", []) if a not in head_words]
    if missing_api: problems.append(f"API entries missing: {missing_api}")
    imgs = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", article)
    if len(imgs) < info.get("images", 0):
        problems.append(f"{len(imgs)} <img> in the article, the notebook has {info['images']} figures")
    for src in imgs:
        if src.startswith(("data:", "http:", "https:")): continue
        if not (f.parent / src.split("#")[0].split("?")[0]).exists(): problems.append(f"image file missing: {src}")
    problems += content_problems(article, f.parent)
    n_math = len(re.findall(r'class="math notranslate', article))
    n_mjx = len(re.findall(r"<mjx-container", article))
    if n_math and n_mjx < n_math: problems.append(f"{n_math - n_mjx} of {n_math} formulas not typeset by MathJax")
    if re.search(r'<script[^>]+src="(?:https?:)?//[^"]*mathjax', dom, flags=re.I):
        problems.append("MathJax is loaded from the network (the site must work offline)")
    title = info.get("title") or ""
    if title and html.unescape(title).split(":")[0].strip() not in _text(dom):
        problems.append(f"title {title!r} not on the page")
    nav = re.findall(r'href="([^"#]+\.html)', dom)
    unlinked = [p for p in pages if p != page and not any(n.endswith(f"{Path(p).name}.html") for n in nav)]
    if unlinked: problems.append(f"navigation lacks links to {unlinked}")
    return {"page": page, "ok": not problems, "problems": problems, "n_img": len(imgs), "n_api": len(info.get("api", [])),
            "n_math": n_math}


def check_site(site: str | Path = "_docs", screenshots: bool = True, workers: int = 3) -> dict:
    """Check every page of a built site in headless Chromium; returns a report (raises nothing: see `ok`)."""
    site = Path(site).resolve()
    man = json.loads((site / "manifest.json").read_text())
    pages = man["pages"]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=workers) as ex:  # one Chromium process per page, a few at a time
        res = list(ex.map(lambda kv: check_page(site, kv[0], kv[1], pages), pages.items()))
    shots = {}
    if screenshots:
        shots["landing"] = str(screenshot(site / "index.html", site / "screenshot.png", size=(1280, 4200)))  # down to its tables
        api = next((p for p, i in pages.items() if i.get("api")), None)
        if api: shots["api"] = str(screenshot(site / f"{api}.html", site / "screenshot-api.png"))
        fig = next((p for p, i in pages.items() if i.get("images")), None)
        if fig: shots["figure"] = str(screenshot(site / f"{fig}.html", site / "screenshot-figure.png"))
    return {"ok": all(r["ok"] for r in res) and not man.get("proc_errors"), "n_pages": len(res), "n_api": sum(r["n_api"] for r in res),
            "n_img": sum(r["n_img"] for r in res), "n_math": sum(r["n_math"] for r in res), "failed": [r for r in res if not r["ok"]],
            "proc_errors": man.get("proc_errors", {}), "screenshots": shots, "pages": res}


if __name__ == "__main__":
    rep = check_site(sys.argv[1] if len(sys.argv) > 1 else "_docs")
    print(json.dumps({k: v for k, v in rep.items() if k != "pages"}, indent=1))
    sys.exit(0 if rep["ok"] else 1)
