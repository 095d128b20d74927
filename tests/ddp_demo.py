"""A tiny training run for the engine's tests: `python ddp_demo.py OUT [iterations] [stop_after]`, alone or
under `torchrun --nproc-per-node 2` (gloo). Each rank writes its final weights to OUT/final_rank<r>.pt."""
import os, sys, time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from labelup.engine import TrainConfig, cleanup_distributed, rank_batch_size, save_checkpoint, setup_distributed, train_loop


def main(argv):
    out, its = Path(argv[0]), int(argv[1]) if len(argv) > 1 else 20
    stop = int(argv[2]) if len(argv) > 2 else None
    info = setup_distributed("cpu")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    pause = float(os.environ.get("LABELUP_DEMO_SLEEP", "0"))  # slows the run down so a test can kill it mid-run

    def batch_fn(step, rng):
        if pause: time.sleep(pause)
        x = torch.from_numpy(rng.normal(size=(rank_batch_size(8, info.world_size), 4)).astype(np.float32))  # global batch 8
        return x, x @ w.T

    def loss_fn(m, b): return nn.functional.mse_loss(m(b[0]), b[1])

    m = train_loop(model, batch_fn, loss_fn, TrainConfig(iterations=its, lr=1e-2, warmup=2, ckpt_every=5,
                                                          num_workers=int(os.environ.get("LABELUP_DEMO_WORKERS", "0"))),
                   out, info=info, progress=False, stop_after=stop)
    flat = torch.cat([p.detach().flatten() for p in m.parameters()])
    save_checkpoint(out / f"final_rank{info.rank}.pt", {"params": flat, "world_size": info.world_size})
    cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1:])
