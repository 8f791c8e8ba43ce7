"""How every Snakemake entry script runs its main: warnings and the traceback of a failure go to the rule's log,
and the failure's cause is also said on the console (the log may be on the disk that just filled up); and how a job
spreads independent work over the threads its rule declares."""

import ctypes
import multiprocessing
import os
import resource
import signal
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import redirect_stderr

from metaprop import relax_garbage_collection

_WORK = None  # (function, items) of the parallel_map running: forked workers inherit it, nothing is pickled to them


def _call(index):
    function, items = _WORK
    return function(items[index])


def _end_with(job):
    """A worker's start: it is killed when the job's process ends, however it ends (Linux's PR_SET_PDEATHSIG), since
    an executor's workers outlive a job killed outright (out of memory, kill -9) and would hold their memory."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != job:  # the job ended before the line above
        os._exit(1)


def parallel_map(function, items, workers):
    """[function(item) for item in items], the same values in the same order, in up to `workers` forked processes.

    A forked worker starts with the job's imports and data (a job's start costs more than most of its work), so
    only where the platform forks safely (Linux); one process elsewhere, or for one worker or one item. Results come
    back pickled."""
    global _WORK
    items = list(items)
    workers = min(workers, len(items))
    if workers <= 1 or sys.platform != "linux":
        return [function(item) for item in items]
    _WORK = (function, items)
    for stream in (sys.stdout, sys.stderr):  # a worker would write again what the job's buffers hold at the fork
        stream.flush()
    try:
        # an executor, not multiprocessing.Pool: a worker killed (out of memory) fails the job instead of hanging it
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_end_with,
                                 initargs=(os.getpid(),)) as executor:
            return list(executor.map(_call, range(len(items))))  # leaving the block reaps the workers (their CPU)
    except BrokenProcessPool:
        raise RuntimeError("a worker process of this job stopped without a result (killed, perhaps for lack of "
                           "memory); run again in one process (snakemake --cores 1, or on a cluster --set-threads "
                           "pool=1 figures=1) or with more memory") from None
    finally:
        _WORK = None


def run(main, smk):
    """Call main(smk) with stderr in the job's log file; a failure is written there and to the console, then
    re-raised."""
    relax_garbage_collection()
    try:
        with open(smk.log[0], "w") as log, redirect_stderr(log):
            try:
                main(smk)
            except Exception:
                traceback.print_exc()
                raise
            # what the job cost, start-up, imports and parallel_map's workers included (benchmarks/seed.py adds
            # these up); peak memory of the largest process
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = time.process_time() + children.ru_utime + children.ru_stime
            peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children.ru_maxrss) / 1024
            print(f"finished: {cpu:.2f} CPU-s, peak memory {peak:.0f} MB", file=log)
    except Exception as err:
        # the cause in one line on the real stderr, e.g. "OSError: [Errno 28] No space left on device: '...'"
        first = err
        while first.__context__ is not None:  # the log could not be written while reporting the first failure
            first = first.__context__
        said = f"{type(first).__name__}: {first}"
        if first is not err:
            said += f" (then, writing the log, {type(err).__name__}: {err})"
        print(f"Error in rule {getattr(smk, 'rule', 'job')}: {said} (log: {smk.log[0]})", file=sys.__stderr__,
              flush=True)
        raise
