"""Snakemake entry: studies.tsv -> pooled, subgroup tests, leave-one-out, the methods side by side, the forest plots'
weights, the cumulative meta-analysis, the small-study tests and the funnel data and, with method bayes, the posterior
curves and the prior sensitivity (posteriors integrated once), the outcomes spread over the rule's threads."""

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
from metaprop.entry import parallel_map, run
from metaprop.io.tables import read_results_tsv, write_tsv


def outcome_tables(studies, outcome, p, bayes):
    """Every table of one outcome ({output name: DataFrame}): its fits serve its leave-one-out, weights, influence,
    cumulative and (method bayes) posterior rows, and, for the primary outcome, the prior sensitivity."""
    pooled, tests = pool_outcome(studies, outcome, p.methods, p.level, p.nagq, p.bayes, p.comparison)
    loo = leave_one_out(studies, outcome, p.methods, p.level, p.nagq)
    tables = {
        "pooled": pooled, "tests": tests, "leave_one_out": loo,
        "weights": forest_weights(studies, pooled, outcome),
        "influence": influence_table(studies, pooled, loo, outcome, p.methods),
        "benchmarks": benchmark_table(studies, pooled, outcome, p.benchmarks.get(outcome), p.bayes),
        "cumulative": cumulative_table(studies, outcome, cumulative_methods(p.primary_method), p.level, p.nagq),
        "small_study": small_study_table(studies, outcome),
    }
    if bayes:  # the posteriors of the pooled rows, kept by bayes.fit, give the curves and the default prior
        tables["posterior"] = curves_table(outcome_curves(studies, outcome, p.bayes, p.level, p.comparison), outcome)
        if outcome == p.outcomes[0]:
            tables["prior"] = prior_sensitivity(studies, outcome, p.bayes, p.level, p.comparison)
    return tables


def main(smk):
    p, out = smk.params, smk.output
    studies = read_results_tsv(smk.input.studies, text=["year"])
    bayes = bool(out.posterior)
    # outcomes are independent: one worker per outcome, up to the rule's threads
    results = parallel_map(lambda outcome: outcome_tables(studies, outcome, p, bayes), p.outcomes, smk.threads)
    tables = {name: pd.concat([r[name] for r in results if name in r], ignore_index=True) for name in results[0]}
    for name in ("pooled", "tests", "leave_one_out", "weights", "influence", "benchmarks", "cumulative",
                 "small_study"):
        write_tsv(tables[name], getattr(out, name))
    write_tsv(methods_comparison(tables["pooled"], tables["tests"], p.outcomes[0]), out.methods)
    if bayes:
        write_tsv(tables["posterior"], out.posterior[0])
        write_tsv(tables["prior"], out.prior[0])
    write_tsv(funnel_table(studies, p.outcomes), out.funnel)


run(main, snakemake)
