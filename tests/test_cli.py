"""The command line's public interface: every command's options (spelling, nargs, default, choices, required, type,
action, metavar) as they were when the parsers were written by hand, and the README walkthrough parsed by the
generated parsers. Wording of the help may change; an option may not."""
import argparse, os, re, shlex, subprocess, sys
from pathlib import Path

import pytest

from labelup.cli import BENCHES, COMMANDS, main
from labelup.core import PROFILES

ROOT = Path(__file__).resolve().parents[1]
PROFILES = tuple(PROFILES)

# command -> option -> (nargs, default, choices, required, type, action, metavar)
FROZEN = {
    'bench memory': {
        '--iterations': (None, 3, None, False, 'int', 'store', None),
        '--json': (None, None, None, True, 'out_file', 'store', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--shape': (3, (96, 512, 512), None, False, 'int', 'store', ('Z', 'Y', 'X')),
        '--studies': (2, (8, 64), None, False, 'int', 'store', ('FEW', 'MANY')),
        '--workers': (None, 2, None, False, 'int', 'store', None),
    },
    'bench prepare': {
        '--generator': (None, 'auto', ('auto', 'phantom'), False, None, 'store', None),
        '--json': (None, None, None, True, 'out_file', 'store', None),
        '--repeats': (None, 3, None, False, 'int', 'store', None),
        '--root': (None, None, None, False, None, 'store', None),
        '--shape': (3, (96, 512, 512), None, False, 'int', 'store', ('Z', 'Y', 'X')),
        '--studies': (None, 8, None, False, 'int', 'store', None),
        '--workers': (None, 2, None, False, 'int', 'store', None),
    },
    'bench scale': {
        '--batch': (None, None, None, False, 'int', 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--ig-steps': (None, None, None, False, 'int', 'store', None),
        '--json': (None, None, None, True, 'out_file', 'store', None),
        '--memory': (None, None, None, False, None, 'store', None),
        '--profile': (None, 'paper', PROFILES, False, None, 'store', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--report': (None, None, None, False, 'out_file', 'store', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--steps': (None, 2, None, False, 'int', 'store', None),
        '--study-shape': (3, (235, 512, 512), None, False, 'int', 'store', ('Z', 'Y', 'X')),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
    },
    'bench student': {
        '--cache': (None, None, None, False, None, 'store', None),
        '--classifier': (None, None, None, False, None, 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--json': (None, None, None, False, 'out_file', 'store', None),
        '--profile': (None, 'smoke', PROFILES, False, None, 'store', None),
        '--references': (None, 5, None, False, 'int', 'store', None),
        '--repeats': (None, 3, None, False, 'int', 'store', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--student': (None, None, None, False, None, 'store', None),
        '--study': (None, None, None, False, None, 'store', None),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
    },
    'bench teacher': {
        '--cache': (None, None, None, False, None, 'store', None),
        '--checkpoint': (None, None, None, False, None, 'store', None),
        '--converged-steps': (None, None, None, False, 'int', 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--json': (None, None, None, True, 'out_file', 'store', None),
        '--profile': (None, 'smoke', PROFILES, False, None, 'store', None),
        '--repeats': (None, None, None, False, 'int', 'store', None),
        '--run': (None, None, None, False, None, 'store', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--study': (None, None, None, False, None, 'store', None),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
    },
    'evaluate': {
        '--include-negatives': (0, False, None, False, None, 'storetrue', None),
        '--json': (None, None, None, False, 'out_file', 'store', None),
        '--per-study': (0, False, None, False, None, 'storetrue', None),
        '--pred': (None, None, None, True, None, 'store', None),
        '--studies': ('*', None, None, False, None, 'store', None),
        '--threshold': (None, None, None, False, 'float', 'store', 'T'),
        '--truth': (None, None, None, True, None, 'store', None),
    },
    'export-bundle': {
        '--checkpoint': (None, None, None, True, None, 'store', None),
        '--force': (0, False, None, False, None, 'storetrue', None),
        '--out': (None, None, None, True, 'out_dir', 'store', None),
    },
    'export-seg': {
        '--checkpoint': (None, None, None, False, None, 'store', None),
        '--dicom': (None, None, None, True, None, 'store', None),
        '--mask': (None, None, None, True, None, 'store', None),
        '--out': (None, None, None, True, 'out_file', 'store', None),
        '--series': (None, None, None, False, None, 'store', 'UID'),
    },
    'finetune': {
        '--annotations': (None, 'boxes', ('boxes', 'masks'), False, None, 'store', None),
        '--cache': (None, None, None, True, None, 'store', None),
        '--checkpoint': (None, None, None, True, None, 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--fraction': (None, None, None, False, 'float', 'store', None),
        '--masks': (None, None, None, False, None, 'store', None),
        '--out': (None, None, None, True, 'out_dir', 'store', None),
        '--profile': (None, 'smoke', PROFILES, False, None, 'store', None),
        '--progress': (0, False, None, False, None, 'storetrue', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--results': (None, None, None, False, 'out_dir', 'store', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--studies': ('+', None, None, False, None, 'store', None),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
        '--truth': (None, 'boxes', ('boxes', 'masks'), False, None, 'store', None),
        '--wsl-pred': (None, None, None, False, None, 'store', None),
    },
    'phantom': {
        '--positive-fraction': (None, None, None, False, 'float', 'store', None),
        '--profile': (None, None, PROFILES, False, None, 'store', None),
        '--seed': (None, None, None, False, 'int', 'store', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--shape': (3, None, None, False, 'int', 'store', ('Z', 'Y', 'X')),
        '--studies': (None, None, None, False, 'int', 'store', None),
        '--workers': (None, 1, None, False, 'int', 'store', None),
        'out': (None, None, None, True, 'out_dir', 'store', None),
    },
    'prepare': {
        '--box-columns': ('*', None, None, False, None, 'store', 'OURS=THEIRS'),
        '--boxes': (None, None, None, False, None, 'store', None),
        '--gaps': (None, 'error', ('error', 'pad'), False, None, 'store', None),
        '--out': (None, None, None, True, 'out_dir', 'store', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--strict': (0, False, None, False, None, 'storetrue', None),
        '--studies': ('*', None, None, False, None, 'store', None),
        '--workers': (None, 1, None, False, 'int', 'store', None),
        'root': (None, None, None, True, None, 'store', None),
    },
    'pseudo-label': {
        '--cache': (None, None, None, True, None, 'store', None),
        '--checkpoint': (None, None, None, True, None, 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--force': (0, False, None, False, None, 'storetrue', None),
        '--heatmaps': (0, False, None, False, None, 'storetrue', None),
        '--out': (None, None, None, True, 'out_dir', 'store', None),
        '--profile': (None, None, PROFILES, False, None, 'store', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--reference-teacher': (0, False, None, False, None, 'storetrue', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--studies': ('*', None, None, False, None, 'store', None),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
    },
    'reproduce': {
        '--data': (None, None, None, False, None, 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--force': (0, False, None, False, None, 'storetrue', None),
        '--nbs': (None, None, None, False, None, 'store', None),
        '--notebooks': ('*', None, None, False, None, 'store', None),
        '--out': (None, None, None, False, 'out_dir', 'store', None),
        '--profile': (None, 'smoke', PROFILES, False, None, 'store', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
    },
    'score': {
        '--batch-size': (None, None, None, False, 'int', 'store', None),
        '--cache': (None, None, None, True, None, 'store', None),
        '--checkpoint': (None, None, None, True, None, 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--out': (None, None, None, True, 'out_file', 'store', None),
        '--studies': ('+', None, None, False, None, 'store', None),
    },
    'segment': {
        '--cache': (None, None, None, False, None, 'store', None),
        '--checkpoint': (None, None, None, True, None, 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--filters --no-filters': (0, None, None, False, None, 'booleanoptional', None),
        '--force': (0, False, None, False, None, 'storetrue', None),
        '--input --dicom': (None, None, None, False, None, 'store', 'PATH'),
        '--no-seg': (0, False, None, False, None, 'storetrue', None),
        '--out': (None, None, None, True, 'out_dir', 'store', None),
        '--probabilities': (0, False, None, False, None, 'storetrue', None),
        '--profile': (None, None, PROFILES, False, None, 'store', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--series': (None, None, None, False, None, 'store', 'UID'),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--studies': ('+', None, None, False, None, 'store', None),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
    },
    'train-classifier': {
        '--cache': (None, None, None, True, None, 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--evaluate --no-evaluate': (0, True, None, False, None, 'booleanoptional', None),
        '--force': (0, False, None, False, None, 'storetrue', None),
        '--out': (None, None, None, True, 'out_dir', 'store', None),
        '--profile': (None, 'smoke', PROFILES, False, None, 'store', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--results': (None, None, None, False, 'out_dir', 'store', None),
        '--resume --no-resume': (0, True, None, False, None, 'booleanoptional', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--studies': ('+', None, None, False, None, 'store', None),
        '--tensorboard': (None, None, None, False, 'out_dir', 'store', None),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
    },
    'train-student': {
        '--cache': (None, None, None, True, None, 'store', None),
        '--device': (None, 'auto', None, False, None, 'store', None),
        '--force': (0, False, None, False, None, 'storetrue', None),
        '--init': (None, None, None, False, None, 'store', None),
        '--labels': (None, None, None, True, None, 'store', None),
        '--out': (None, None, None, True, 'out_dir', 'store', None),
        '--profile': (None, 'smoke', PROFILES, False, None, 'store', None),
        '--quiet': (0, False, None, False, None, 'storetrue', None),
        '--resume --no-resume': (0, True, None, False, None, 'booleanoptional', None),
        '--set': ('+', (), None, False, None, 'extend', 'SECTION.KEY=VALUE'),
        '--studies': ('+', None, None, False, None, 'store', None),
        '--tensorboard': (None, None, None, False, 'out_dir', 'store', None),
        '--threads': (None, None, None, False, 'int', 'store', 'N'),
        '--validate': (0, False, None, False, None, 'storetrue', None),
    },
}

def commands():
    "Every command's name and `Command`, bench commands as `bench NAME`."
    return [(k, c) for k, c in COMMANDS.items() if k != "bench"] + [(f"bench {k}", c) for k, c in BENCHES.items()]

def option_spec(ap: argparse.ArgumentParser) -> dict:
    "The frozen fields of each option of `ap`."
    out = {}
    for a in ap._actions:
        if isinstance(a, argparse._HelpAction): continue
        d = tuple(a.default) if isinstance(a.default, (list, tuple)) else a.default
        out[" ".join(a.option_strings) or a.dest] = (
            a.nargs, d, tuple(a.choices) if a.choices else None, a.required, a.type.__name__ if a.type else None,
            type(a).__name__.replace("Action", "").replace("_", "").replace("Store", "store").lower(),
            tuple(a.metavar) if isinstance(a.metavar, tuple) else a.metavar)
    return out

def test_every_command_is_known():
    assert sorted(k for k, _ in commands()) == sorted(FROZEN)

@pytest.mark.parametrize("name", sorted(FROZEN))
def test_options_unchanged(name):
    "Every option a command had keeps its spelling, nargs, default, choices and type (new options may be added)."
    spec = option_spec(dict(commands())[name].parser())
    assert {k: spec.get(k) for k in FROZEN[name]} == FROZEN[name]

def test_segment_source_is_exactly_one_of(capsys):
    ap = COMMANDS["segment"].parser()
    [g] = ap._mutually_exclusive_groups
    assert g.required and sorted(a.dest for a in g._group_actions) == ["cache", "input"]

def test_alias_usage_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as e: main(["train-segmenter", "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: labelup train-student")
    assert main([]) == 2 and "usage: labelup <command>" in capsys.readouterr().err
    assert main(["bench"]) == 2 and "usage: labelup bench <command>" in capsys.readouterr().err
    assert main(["nope"]) == 2 and capsys.readouterr().err.startswith("labelup: unknown command 'nope'")
    assert main(["-V"]) == 0 and re.match(r"\d+\.\d+", capsys.readouterr().out)
    with pytest.raises(SystemExit) as e: main(["evaluate", "--pred", "p"])
    assert e.value.code == 2 and "the following arguments are required: --truth" in capsys.readouterr().err

def walkthrough() -> list[list[str]]:
    "The argument lists of the README walkthrough (the bash block starting with RUN=), $RUN left as is."
    md = (ROOT / "README.md").read_text()
    [block] = [b for b in re.findall(r"```bash\n(.+?)\n```", md, re.S) if b.startswith("RUN=")]
    return [shlex.split(l, comments=True)[1:] for l in block.replace("\\\n", " ").splitlines() if l.startswith("labelup ")]

def test_readme_walkthrough_parses(tmp_path):
    "Each walkthrough command line parses (output folders are checked, nothing runs)."
    lines = walkthrough()
    assert len(lines) >= 8
    for argv in lines:
        argv = [a.replace("$RUN", str(tmp_path)) for a in argv]
        name, rest = (f"bench {argv[1]}", argv[2:]) if argv[0] == "bench" else (argv[0], argv[1:])
        cmd = dict(commands())[COMMANDS.aliases.get(name, name)]
        cmd.parser().parse_args(rest)

def test_help_imports_no_library():
    "Listing the commands and building every parser imports neither torch nor MONAI."
    code = ("import sys, labelup.cli as c\n"
            "for k, v in [*c.COMMANDS.items(), *c.BENCHES.items()]:\n"
            "    if isinstance(v, c.Command): v.parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'monai', 'timm', 'pandas') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout

def test_python_m_runs_the_cli():
    "`python -m labelup.cli ...` (as `torchrun -m labelup.cli` starts it) is the `labelup` command."
    r = subprocess.run([sys.executable, "-m", "labelup.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("usage: labelup <command>"), r


def test_family_names_have_one_source():
    "The data families (and the chest family's diagnostic variants) the profile accepts, the pipeline can generate and `labelup phantom --family` offers are the same."
    from labelup.config import CHOICES
    from labelup.chest import CHEST_VARIANTS
    from labelup.pipeline import FAMILIES
    ap = COMMANDS["phantom"].parser()
    [fam] = [a for a in ap._actions if a.dest == "family"]
    assert (*FAMILIES, *CHEST_VARIANTS) == CHOICES["data.family"] == tuple(fam.choices)
