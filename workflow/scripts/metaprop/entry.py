"""How every Snakemake entry script runs its main: warnings and the traceback of a failure go to the rule's log,
and the failure's cause is also said on the console (the log may be on the disk that just filled up)."""

import resource
import sys
import time
import traceback
from contextlib import redirect_stderr


def run(main, smk):
    """Call main(smk) with stderr in the job's log file; a failure is written there and to the console, then
    re-raised."""
    try:
        with open(smk.log[0], "w") as log, redirect_stderr(log):
            try:
                main(smk)
            except Exception:
                traceback.print_exc()
                raise
            # what the job cost, start-up and imports included (benchmarks/seed.py adds these up)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"finished: {time.process_time():.2f} CPU-s, peak memory {peak:.0f} MB", file=log)
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
