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


def outcome_tables(studies, outcome, part, p, bayes):
    """The tables of one outcome ({output name: DataFrame}): part "fits", its pooled fits and what they serve (the
    leave-one-out, weights, influence and (method bayes) posterior rows, and, for the primary outcome, the prior
    sensitivity); part "cumulative", its cumulative meta-analysis and small-study tests, which refit subsets."""
    if part == "cumulative":
        return {"cumulative": cumulative_table(studies, outcome, cumulative_methods(p.primary_method), p.level,
                                               p.nagq),
                "small_study": small_study_table(studies, outcome)}
    pooled, tests = pool_outcome(studies, outcome, p.methods, p.level, p.nagq, p.bayes, p.comparison)
    loo = leave_one_out(studies, outcome, p.methods, p.level, p.nagq)
    tables = {
        "pooled": pooled, "tests": tests, "leave_one_out": loo,
        "weights": forest_weights(studies, pooled, outcome),
        "influence": influence_table(studies, pooled, loo, outcome, p.methods),
        "benchmarks": benchmark_table(studies, pooled, outcome, p.benchmarks.get(outcome), p.bayes),
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
    # the outcomes' parts are independent: spread over the rule's threads, the largest first
    parts = [(outcome, part) for part in ("fits", "cumulative") for outcome in p.outcomes]
    results = parallel_map(lambda task: outcome_tables(studies, *task, p, bayes), parts, smk.threads)
    tables = {}
    for outcome in p.outcomes:  # outcome by outcome, as one process would have written them
        for (of, _), result in zip(parts, results):
            if of == outcome:
                for name, table in result.items():
                    tables.setdefault(name, []).append(table)
    tables = {name: pd.concat(pieces, ignore_index=True) for name, pieces in tables.items()}
    for name in ("pooled", "tests", "leave_one_out", "weights", "influence", "benchmarks", "cumulative",
                 "small_study"):
        write_tsv(tables[name], getattr(out, name))
    write_tsv(methods_comparison(tables["pooled"], tables["tests"], p.outcomes[0]), out.methods)
    if bayes:
        write_tsv(tables["posterior"], out.posterior[0])
        write_tsv(tables["prior"], out.prior[0])
    write_tsv(funnel_table(studies, p.outcomes), out.funnel)


run(main, snakemake)
