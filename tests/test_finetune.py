"""Fast checks of labelup.finetune outside its notebook (the notebook trains the toy models)."""
import json, math

import numpy as np
import pytest

from labelup.finetune import finetune_split
from labelup.paper.finetune import PAPER_TABLE6, table6, verdict
from labelup.cli import main


@pytest.mark.parametrize("n,frac", [(2, 0.25), (5, 0.25), (111 * 4, 0.25), (9, 0.5), (30, 0.1)])
def test_split_never_scores_a_finetuning_study(n, frac):
    pool = [f"{i:012x}" for i in range(n)]
    sp = finetune_split(pool, frac, seed=3)
    assert not set(sp["finetune"]) & set(sp["eval"])
    assert sorted(sp["finetune"] + sp["eval"]) == pool
    assert len(sp["eval"]) >= 1 and len(sp["finetune"]) >= 1
    assert len(sp["finetune"]) == min(max(1, math.floor(n * frac + 0.5)), n - 1)
    assert finetune_split(pool[::-1], frac, seed=3) == sp


def test_split_paper_size():
    # the paper: 25% of RSPECT-augmented's 445 annotated studies -> 111 for fine-tuning
    sp = finetune_split([str(i) for i in range(445)], 0.25)
    assert len(sp["finetune"]) == 111 and len(sp["eval"]) == 334


def test_table_keeps_paper_rows_labelled():
    rows = [dict(model=m, train_studies=1, annotated_studies=1, eval_studies=3, sensitivity=s, ppv=p, f1=f)
            for m, s, p, f in [("WSL baseline", .6, .7, .64), ("WSL fine-tuned", .5, .7, .58), ("From scratch (He init)", .7, .7, .7)]]
    t = table6(rows, "synthetic")
    paper = t[t.source == "paper (RSPECT)"]
    assert list(paper.F1) == [r[-1] for r in PAPER_TABLE6]
    assert (t.source == "ours (synthetic profile)").sum() == 3
    text, claims = verdict(rows)
    assert "does NOT beat" in text and not any(c["holds"] for c in claims[:2])
    json.dumps(claims)  # what labelup reproduce gathers


def test_cli_help(capsys):
    assert main(["--help"]) == 0
    assert "finetune" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e: main(["finetune", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--checkpoint" in out and "--annotations" in out
