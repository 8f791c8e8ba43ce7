"""How every Snakemake entry script runs its main: warnings and the traceback of a failure go to the rule's log."""

import traceback
from contextlib import redirect_stderr


def run(main, smk):
    """Call main(smk) with stderr in the job's log file; a failure is written there, then re-raised."""
    with open(smk.log[0], "w") as log, redirect_stderr(log):
        try:
            main(smk)
        except Exception:
            traceback.print_exc()
            raise
