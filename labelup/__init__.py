"""Weakly supervised pulmonary embolism segmentation from image-level labels through model explainability (Label up, Condrea et al.)

Modules:

- `labelup.engine`: Warm-up + linear-decay learning rate, AdamW, `torchrun`/DDP (gloo on CPU, NCCL on GPU), mixed precision on CUDA, atomic checkpoints with every random state, exact resume, a progress bar and a CSV log. Stage 1 (the slice classifier) and stage 3 (the student) only supply a model, a batch sampler and a loss.
- `labelup.pseudo`: Stage 2 as a command (`labelup pseudo-label`): the IG teacher of `02_explain` and `03_iterate` plus the filters of `04_filter`, run over every study of a cache, sharded across processes and resumable. Then the paper's stage-2 results (III.B; Tables II, III; Figs. 3, 5, 6) regenerated on this run's data, and `labelup bench teacher`."""

__version__ = "0.1.0"
