"""Weakly supervised pulmonary embolism segmentation from image-level labels through model explainability (Label up, Condrea et al.)

Modules:

- `labelup.engine`: Warm-up + linear-decay learning rate, AdamW, `torchrun`/DDP (gloo on CPU, NCCL on GPU), mixed precision on CUDA, atomic checkpoints with every random state, exact resume, a progress bar and a CSV log. Stage 1 (the slice classifier) and stage 3 (the student) only supply a model, a batch sampler and a loss."""

__version__ = "0.1.0"
