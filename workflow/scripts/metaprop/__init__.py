"""The pipeline's library, a folder per stage: io, stats, analysis, figures, report, archive."""

import gc


def relax_garbage_collection():
    """The objects made so far (imports, which live as long as the process) are left out of the cyclic garbage
    collector's passes, and a young-generation pass waits for 10,000 new objects instead of 700. Parsing the
    workflow, fitting and drawing make many short-lived objects; the passes over them cost Snakemake and each job 3
    to 20% of its CPU (benchmarks/README.md). Memory is still freed by reference counting, cycles a little later."""
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
