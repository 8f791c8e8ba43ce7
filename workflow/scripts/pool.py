"""Snakemake entry: studies.tsv -> pooled, subgroup tests, leave-one-out, the methods side by side, the forest plots'
weights, the cumulative meta-analysis, the small-study tests and the funnel data and, with method bayes, the posterior curves and the prior sensitivity (posteriors integrated once)."""

import pandas as pd
from metaprop.analysis.benchmark import benchmark_table
from metaprop.analysis.cumulative import cumulative_methods, cumulative_table
from metaprop.analysis.influence import influence_table
from metaprop.analysis.meta_analysis import (
    forest_weights,
    leave_one_out,
    methods_comparison,
    pool_outcome,
    prior_sensitivity,
)
from metaprop.analysis.posterior_curves import curves_table, outcome_curves
from metaprop.analysis.small_study import funnel_table, small_study_table
from metaprop.entry import run
from metaprop.io.tables import read_results_tsv, write_tsv


def main(smk):
    p, out = smk.params, smk.output
    studies = read_results_tsv(smk.input.studies, text=["year"])
    results = [pool_outcome(studies, outcome, p.methods, p.level, p.nagq, p.bayes, p.comparison)
               for outcome in p.outcomes]
    pooled = pd.concat([pooled for pooled, _ in results], ignore_index=True)
    tests = pd.concat([tests for _, tests in results], ignore_index=True)
    loo = pd.concat([leave_one_out(studies, o, p.methods, p.level, p.nagq) for o in p.outcomes], ignore_index=True)
    write_tsv(pooled, out.pooled)
    write_tsv(tests, out.tests)
    write_tsv(loo, out.leave_one_out)
    write_tsv(methods_comparison(pooled, tests, p.outcomes[0]), out.methods)
    write_tsv(pd.concat([forest_weights(studies, pooled, o) for o in p.outcomes], ignore_index=True), out.weights)
    write_tsv(pd.concat([influence_table(studies, pooled, loo, o, p.methods) for o in p.outcomes], ignore_index=True),
              out.influence)
    write_tsv(pd.concat([benchmark_table(studies, pooled, o, p.benchmarks.get(o), p.bayes) for o in p.outcomes],
                        ignore_index=True), out.benchmarks)
    if out.posterior:  # the posteriors of the pooled rows, kept by bayes.fit, give the curves and the default prior
        curves = [curves_table(outcome_curves(studies, o, p.bayes, p.level, p.comparison), o) for o in p.outcomes]
        write_tsv(pd.concat(curves, ignore_index=True), out.posterior[0])
        write_tsv(prior_sensitivity(studies, p.outcomes[0], p.bayes, p.level, p.comparison), out.prior[0])
    cumulative = [cumulative_table(studies, o, cumulative_methods(p.primary_method), p.level, p.nagq)
                  for o in p.outcomes]
    write_tsv(pd.concat(cumulative, ignore_index=True), out.cumulative)
    write_tsv(pd.concat([small_study_table(studies, o) for o in p.outcomes], ignore_index=True), out.small_study)
    write_tsv(funnel_table(studies, p.outcomes), out.funnel)


run(main, snakemake)
