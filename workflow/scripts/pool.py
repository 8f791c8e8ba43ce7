"""Snakemake entry: studies.tsv -> pooled.tsv and subgroup_tests.tsv."""

from contextlib import redirect_stderr

import pandas as pd
from metaprop.analysis import pool_outcome
from metaprop.tables import read_results_tsv, write_tsv


def main(smk):
    p = smk.params
    studies = read_results_tsv(smk.input.studies)
    results = [pool_outcome(studies, outcome, p.methods, p.level, p.nagq) for outcome in p.outcomes]
    write_tsv(pd.concat([pooled for pooled, _ in results], ignore_index=True), smk.output.pooled)
    write_tsv(pd.concat([tests for _, tests in results], ignore_index=True), smk.output.tests)


with open(snakemake.log[0], "w") as log, redirect_stderr(log):
    main(snakemake)
