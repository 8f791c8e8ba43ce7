"""Snakemake entry: studies.tsv -> pooled, subgroup tests, leave-one-out and the methods side by side."""

import pandas as pd
from metaprop.analysis import leave_one_out, methods_comparison, pool_outcome
from metaprop.entry import run
from metaprop.tables import read_results_tsv, write_tsv


def main(smk):
    p, out = smk.params, smk.output
    studies = read_results_tsv(smk.input.studies)
    results = [pool_outcome(studies, outcome, p.methods, p.level, p.nagq, p.bayes, p.comparison)
               for outcome in p.outcomes]
    pooled = pd.concat([pooled for pooled, _ in results], ignore_index=True)
    tests = pd.concat([tests for _, tests in results], ignore_index=True)
    loo = pd.concat([leave_one_out(studies, o, p.methods, p.level, p.nagq) for o in p.outcomes], ignore_index=True)
    write_tsv(pooled, out.pooled)
    write_tsv(tests, out.tests)
    write_tsv(loo, out.leave_one_out)
    write_tsv(methods_comparison(pooled, tests, p.outcomes[0]), out.methods)


run(main, snakemake)
