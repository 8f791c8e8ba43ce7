"""The pipeline's library, a folder per stage: io, stats, analysis, figures, report, archive."""

import gc
import os

# One thread per process for numpy's linear algebra, set before numpy loads (a job script's first import is of this
# package): a rule's threads go to parallel_map's processes, and Snakemake gives each job as many BLAS threads as
# the rule has, 2 x 2 threads on 2 cores, whose waits cost the pool job 5% of its CPU (benchmarks/README.md).
for _name in ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_name] = "1"


def relax_garbage_collection():
    """The objects made so far (imports, which live as long as the process) are left out of the cyclic garbage
    collector's passes, and a young-generation pass waits for 10,000 new objects instead of 700. Parsing the
    workflow, fitting and drawing make many short-lived objects; the passes over them cost Snakemake and each job 3
    to 20% of its CPU (benchmarks/README.md). Memory is still freed by reference counting, cycles a little later."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
