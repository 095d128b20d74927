"""`labelup reproduce --profile smoke` (the README's main job) regenerates every paper table and figure.

This is the end-to-end test of the whole pipeline: phantom -> prepare -> classifier -> teacher ->
student -> evaluation -> fine-tuning, each notebook executed by papermill in a shared run folder.
Smoke numbers are noise (the profile trains for seconds); what is asserted is that every artefact is
produced, that the results README reports each claim, and that a rerun reuses finished stages.

The reproduction runs as a user who ran `pip install labelup` would run it: the wheel `pip wheel .` builds, installed
alone in a folder (its dependencies are this environment's), from an empty folder outside the checkout, with the
notebooks the wheel carries. The other commands run from the checkout, on that run.
"""
import json, os, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

from conftest import install_wheel, wheel_env

ROOT = Path(__file__).resolve().parent.parent
LABELUP = str(Path(sys.executable).parent / "labelup")  # the console script of this environment


@pytest.fixture(scope="module")
def run(tmp_path_factory, labelup_wheel):
    site = install_wheel(labelup_wheel[1], tmp_path_factory.mktemp("site"))
    empty = tmp_path_factory.mktemp("reproduce")
    out = empty / "smoke"
    t0 = time.time()
    r = subprocess.run([str(site / "bin" / "labelup"), "reproduce", "--profile", "smoke", "--out", "smoke"],
                       capture_output=True, text=True, env=wheel_env(site), cwd=empty)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    # the newcomer sees which notebook runs and how long each took
    for i, nb in enumerate(["04_phantom", "21_table1", "22_tables2_3", "22a_transfer", "22b_evidence", "22c_families",
                            "26_bench_teacher", "23_tables4_5", "24_table6"], 1):
        assert f"[{i}/9] {nb} (" in r.stdout and f"{nb}" in json.loads((out / "results" / "timings.json").read_text()), r.stdout
    assert "Kernel is running over TCP" not in r.stderr
    for nb in (out / "notebooks").glob("*.ipynb"):   # executed notebooks carry no absolute path of the run
        assert str(out) not in nb.read_text() and str(out.resolve()) not in nb.read_text(), nb.name
    return out, time.time() - t0


def test_every_table_and_figure(run):
    out, secs = run
    res = out / "results"
    for n in range(1, 7):
        assert (res / f"table{n}.md").stat().st_size > 0, f"table{n}.md missing"
        assert (res / f"table{n}.csv").stat().st_size > 0, f"table{n}.csv missing"
    pngs = {p.name for p in res.glob("*.png")}
    for fig in ("fig5", "fig6", "roc"):
        assert any(fig in p for p in pngs), f"no {fig} figure in {sorted(pngs)}"
    readme = (res / "README.md").read_text()
    assert "Table VI" in readme and "_not produced in this run_" not in readme
    rj = json.loads((res / "run.json").read_text())   # provenance: the code that made the run, when, on which CPU
    assert rj["commit"] is None, rj                    # an installed wheel is no checkout: no commit to name
    assert rj["date"][:2] == "20" and rj["cpu"] and rj["labelup"], rj
    claims = [c for f in res.glob("claims_*.json") for c in json.loads(f.read_text())]
    assert len(claims) >= 5
    for c in claims:   # each claim's verdict in the README is the one its JSON record holds
        row = next(l for l in readme.splitlines() if l.startswith(f"| {c['claim']} |"))
        assert row.rstrip(" |").endswith("yes" if c["holds"] else "**no**"), (row, c["holds"])
    bench = json.loads((res / "bench_teacher.json").read_text())  # the teacher benchmark on the run's classifier
    assert abs(bench["speedup"] - bench["reference_s"] / bench["fast_s"]) <= 0.01 * bench["speedup"] + 1e-3, bench
    if bench["ig_floor"]["images"]:   # a smoke classifier may call no window positive: then there is no floor to check
        assert abs(bench["ig_floor"]["max_speedup"] - bench["reference_s"] / bench["ig_floor"]["fast_ig_s"]) <= 0.02 * bench["ig_floor"]["max_speedup"]
    else: assert "No IG floor: the labelup teacher explained no window" in readme
    assert "Teacher benchmark" in readme and f"Speed-up **{bench['speedup']:.2f}x**" in readme
    assert (res / "step_convergence.csv").stat().st_size > 0
    assert "Smoke numbers are noise" in readme and "synthetic CTPA phantom" in readme
    nbs = sorted(p.stem for p in (out / "notebooks").glob("*.ipynb"))
    assert nbs == sorted(["04_phantom", "21_table1", "22_tables2_3", "22a_transfer", "22b_evidence", "22c_families", "23_tables4_5", "24_table6",
                          "26_bench_teacher"])
    tr = json.loads((res / "transfer.json").read_text())    # the transfer check ran on the held-out regime's studies
    assert tr["holdout_regime"] == "late" and [r["studies"] for r in tr["rows"]][1] == tr["transfer_studies"]
    assert "Transfer: the classifier and teacher" in readme and "| held-out late regime |" in readme
    ev = json.loads((res / "evidence.json").read_text())    # the evidence check ran on the test split's positive windows
    assert ev["windows"] == ev["positive_slices"] > 0                      # every PE slice of the test split
    k = ev["share_drop_over"] * ev["windows"]; assert abs(k - round(k)) < 1e-6   # a share of those windows, not of another count
    assert ev["median_logit_drop"] <= ev["drop"] or ev["share_drop_over"] >= 0.5  # the median and the share tell one story
    assert ev["share_drop_over"] <= 0.5 or ev["median_logit_drop"] > ev["drop"]
    assert "Evidence: does the classifier look at the clot?" in readme and "negatives matched to the positives' height" in readme
    assert set(ev["ig_clot_share"]) == {"zeros", "blur", "closing", "mean"} and ev["ig_windows"] > 0   # IG's share on the clot
    assert "positive IG attribution on the clot, reference closing" in readme
    fam = json.loads((res / "families.json").read_text())   # the cross-family check: in-family and zero-shot on the chest family
    assert [(r["trained_on"], r["scored_on"], r["kind"]) for r in fam["rows"]] == [("phantom", "phantom", "in-family"),
                                                                                     ("phantom", "chest", "zero-shot")]
    assert fam["rows"][1]["scores"]["studies"] == fam["family_studies"] == 2
    assert "Cross-family: the classifier and teacher on another simulator" in readme and "| phantom | chest | zero-shot |" in readme
    refs = pd.read_csv(res / "references.csv")               # the IG references compared on validation studies
    assert set(refs.reference) >= {"zeros", "blur", "closing", "mean", "negatives"} and "IG references compared" in readme
    print(f"reproduce --profile smoke: {secs:.0f} s")


def test_code_version_names_the_checkout():
    "From a checkout, the run records the commit it runs (`+changes` when tracked files differ)."
    from labelup.paper.reproduce import code_version
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    v = code_version()
    assert (v["commit"].split("+")[0] == head if (ROOT / ".git").exists() else v["commit"] is None), v


def test_rerun_reuses_stages(run):
    out, _ = run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "notebooks").glob("*.ipynb")}
    r = subprocess.run([LABELUP, "reproduce", "--profile", "smoke", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("done earlier, reused") == len(before) == 9, r.stdout   # one line per notebook, each reused
    assert "Kernel is running over TCP" not in r.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (out / "notebooks").glob("*.ipynb")} == before  # nothing re-executed


def test_compare_joins_another_run(run, tmp_path):
    "`--compare RUN` (BYOD): the cross-family table joins that run's in-family rows as `BYOD (retrained)`, by name only."
    import shutil
    out, _ = run
    other = tmp_path / "other"
    shutil.copytree(out, other)                       # stands for a run of the same profile on other data
    (other / "notebooks" / "22c_families.ipynb").unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([LABELUP, "reproduce", "--profile", "smoke", "--out", str(other), "--notebooks", "22c_families",
                        "--compare", str(out)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "unknown parameter" not in r.stdout + r.stderr        # each notebook is passed only what it declares
    fam = json.loads((other / "results" / "families.json").read_text())
    assert fam["other_runs"] == [out.name] and str(out) not in (other / "results" / "families.json").read_text()
    mine = json.loads((out / "results" / "families.json").read_text())["rows"]
    byod = [x for x in fam["rows"] if x["kind"] == "BYOD (retrained)"]
    assert len(byod) == sum(x["kind"] == "in-family" for x in mine) > 0
    rj = json.loads((other / "results" / "run.json").read_text())
    assert rj["compare"] == [out.name] and rj["data"] == "phantom"
    r = subprocess.run([LABELUP, "reproduce", "--profile", "smoke", "--out", str(tmp_path / "x"), "--compare", str(tmp_path)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "no results/families.json" in r.stderr and not (tmp_path / "x").exists()


def test_evidence_on_real_data_layout(tmp_path):
    "On an RSPECT-layout folder (no true masks) the evidence notebook reports the height-matched AUROC only."
    from labelup._fixtures import toy_dataset
    root = toy_dataset(tmp_path / "rspect", n_studies=6, positive_fraction=0.5)
    out = tmp_path / "run"
    r = subprocess.run([LABELUP, "reproduce", "--profile", "smoke", "--data", str(root), "--out", str(out),
                        "--notebooks", "22b_evidence"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ev = json.loads((out / "results" / "evidence.json").read_text())
    assert "height_matched_auroc" in ev and "windows" not in ev and "patch_auroc" not in ev and "ig_clot_share" not in ev, ev
    nb = (out / "notebooks" / "22b_evidence.ipynb").read_text()
    assert "on real data only the height-matched AUROC runs" in nb
    assert not (out / "results" / "evidence.png").exists()
