"""Weakly supervised pulmonary embolism segmentation from image-level labels through model explainability (Label up, Condrea et al.)

Modules:

- `labelup.cli`: `labelup <command> ...`: one subcommand per stage. Each command is a plain function whose signature is its interface: the parser is generated from the parameters' names, types, defaults and docments comments (as fastcore's `call_parse` does), options several commands share are defined once, and the body calls one library function that an earlier chapter teaches. Printing and progress bars live here, not in the library. Library imports happen inside each command, so `labelup --help` stays fast and torch or MONAI load only for the command that needs them.
- `labelup.core`: The few things every module shares and that depend on nothing: the array conventions, the errors a user sees (one line, naming the file), the limits no file may raise, safe names for output paths, the HU window and the logger. The profiles, files and runtime helpers that once lived here are in `00a_config`, `00b_files` and `00c_runtime`.
- `labelup.engine`: Warm-up + linear-decay learning rate, AdamW, `torchrun`/DDP (gloo on CPU, NCCL on GPU), mixed precision on CUDA, atomic checkpoints with every random state, exact resume, a progress bar and a CSV log. Stage 1 (the slice classifier) and stage 3 (the student) only supply a model, a batch sampler and a loss.
- `labelup.teacher`: The teacher (paper III.B) assembled from its parts: the Integrated Gradients explainer (`07_explain`), Algorithm 1 and slice aggregation (`08_iterate`) and the filters (`09_filter`), run over every study of a cache, sharded across processes and resumable. Its output, one pseudo-label per study, is what the student (stage 3) learns from; `labelup pseudo-label` runs it. The paper's stage-2 results (Tables II, III; Figs. 3, 5, 6) are regenerated in `22_tables2_3`."""

__version__ = "0.1.0"

# The main entry points, importable from the package itself (`from labelup import segment_study`). They load on
# first use, so `import labelup` and `labelup --help` stay fast.
_API = {"get_profile": "labelup.core", "prepare": "labelup.data", "load_study": "labelup.data",
        "train_classifier": "labelup.classifier", "pseudo_label": "labelup.teacher", "train_student": "labelup.student",
        "segment_studies": "labelup.student", "segment_study": "labelup.clinical", "find_studies": "labelup.clinical",
        "write_study": "labelup.clinical", "segment_inputs": "labelup.clinical",
        "pe_table": "labelup.clinical", "write_seg": "labelup.clinical", "export_bundle": "labelup.bundle",
        "reproduce": "labelup.paper.reproduce"}
__all__ = ["__version__", *_API]

def __getattr__(name):
    if name in _API:
        import importlib
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'labelup' has no attribute {name!r}")

