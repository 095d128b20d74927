import os

# Tests run on small CPUs: keep BLAS/torch from oversubscribing when pytest-xdist runs workers in parallel.
os.environ.setdefault("MPLBACKEND", "Agg")
