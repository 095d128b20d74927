import os

# Tests run on small CPUs: keep BLAS/torch from oversubscribing when pytest-xdist runs workers in parallel.
os.environ.setdefault("MPLBACKEND", "Agg")
# One BLAS/OpenMP thread per process: the suite starts multi-process runs (torchrun, papermill kernels) on
# small CPUs, where oversubscribed OpenMP threads made training several times slower. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")
