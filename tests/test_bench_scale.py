"""`labelup bench scale` and `labelup bench memory` as a user runs them (small shapes), and the store's reads."""
import json

import numpy as np

from labelup.cli import main


def test_bench_scale_cli(tmp_path):
    js, md = tmp_path / "scale.json", tmp_path / "scale.md"
    assert main(["bench", "scale", "--profile", "smoke", "--json", str(js), "--study-shape", "24", "96", "96",
                 "--steps", "1", "--report", str(md), "--quiet"]) == 0
    rec = json.loads(js.read_text())
    assert rec["profile"] == "smoke" and len(rec["stages"]) == 6
    ig = next(r for r in rec["stages"] if r["stage"] == "IG on one slab")
    assert ig["slab_s_at_profile"] > ig["measured_s"]          # 2 measured steps scaled to the profile's 16
    inf = next(r for r in rec["stages"] if r["stage"] == "sliding-window inference")
    assert inf["fraction"] and inf["study_windows"] >= inf["measured_windows"]
    alg = next(r for r in rec["stages"] if r["stage"] == "Algorithm-1 iteration")
    assert alg["shape"] == [24, 96, 96]                         # the study shape asked for, at the profile's image size
    assert "### The whole run, extrapolated" in md.read_text()
    assert main(["bench", "scale", "--json", str(js), "--memory", str(tmp_path / "nope.json")]) == 2


def test_bench_memory_cli(tmp_path):
    js = tmp_path / "mem.json"
    rc = main(["bench", "memory", "--json", str(js), "--studies", "2", "6", "--shape", "16", "64", "64",
               "--iterations", "2", "--workers", "1", "--quiet"])
    rec = json.loads(js.read_text())
    assert {r["run"] for r in rec["runs"]} == {"classifier", "student", "in-memory reference"} and len(rec["runs"]) == 6
    assert all(r["peak_rss_mb"] > 100 for r in rec["runs"])     # a real process: interpreter and torch at least
    assert all(r["workers_peak_rss_mb"] > 0 for r in rec["runs"] if r["run"] != "in-memory reference")   # batches from workers
    assert rc == (0 if max(rec["peak_ratio"]["classifier"], rec["peak_ratio"]["student"]) <= 1.3 else 1)   # the exit code says it
