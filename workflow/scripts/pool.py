"""Snakemake entry: every analysis of the kept trials, its independent parts spread over the rule's threads.

From studies.tsv: pooled, subgroup tests, leave-one-out, the methods side by side, the forest plots' weights,
influence, benchmarks, the cumulative meta-analysis, the small-study tests and the funnel data and, with method bayes,
the posterior curves and the prior sensitivity (posteriors integrated once). The sensitivity analyses: the primary
analysis under every overlap rule (overlap_sensitivity.tsv), the primary outcome regrouped by each moderator column
and pooled with every method (subgroups/), modality fitted together with moderators (adjusted_comparisons.tsv), and
the meta-regressions on numeric moderators (meta_regressions.tsv, the bubble plots' data in bubble.tsv)."""

import pandas as pd
from metaprop.analysis.adjusted import adjusted_comparisons
from metaprop.analysis.benchmark import benchmark_table
from metaprop.analysis.cumulative import cumulative_methods, cumulative_table
from metaprop.analysis.influence import influence_table
from metaprop.analysis.meta_analysis import (
    forest_weights,
    leave_one_out,
    methods_comparison,
    moderator_analysis,
    overlap_sensitivity,
    pool_outcome,
    prior_sensitivity,
)
from metaprop.analysis.metareg import meta_regressions
from metaprop.analysis.posterior_curves import curves_table, outcome_curves
from metaprop.analysis.small_study import funnel_table, small_study_table
from metaprop.entry import parallel_map, run
from metaprop.io.inputs import read_checked_trials
from metaprop.io.tables import read_results_tsv, write_tsv
from metaprop.spec import outcome_from

PER_OUTCOME = ("fits", "cumulative", "metareg", "adjusted")  # the parts done once per outcome


def fitted_tables(studies, outcome, p, bayes):
    """One outcome's pooled fits and what they serve ({output name: DataFrame}): the leave-one-out, weights,
    influence, benchmark and (method bayes) posterior rows, and, for the primary outcome, the prior sensitivity."""
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


def part_tables(part, studies, trials, p, bayes):
    """The tables of one part ({output name: DataFrame}): (kind, outcome or moderator column)."""
    kind, key = part
    primary = outcome_from(p.primary)
    if kind == "fits":
        return fitted_tables(studies, key, p, bayes)
    if kind == "cumulative":  # refits of growing subsets
        return {"cumulative": cumulative_table(studies, key, cumulative_methods(p.primary_method), p.level, p.nagq),
                "small_study": small_study_table(studies, key)}
    if kind == "overlap":
        return {"overlap": overlap_sensitivity(trials, primary, p.primary_method, p.rules, p.level, p.nagq, p.bayes,
                                               p.comparison)}
    if kind == "moderator":
        tables = moderator_analysis(studies, primary.id, key, p.where[key], p.across[key], p.sensitivity_methods,
                                    p.level, p.nagq)
        weights = forest_weights(tables[0], tables[1], primary.id, column="group")
        return {f"subgroups/{key}/{name}": table
                for name, table in zip(("studies", "pooled", "tests", "weights"), (*tables, weights))}
    if kind == "adjusted":
        return {"adjusted": adjusted_comparisons(studies, key, p.sets, p.level, p.nagq, p.comparison)}
    if kind == "metareg":
        metareg, bubble = meta_regressions(studies, key, p.metaregs, p.comparison, p.level, p.nagq, p.bubble_method)
        return {"metareg": metareg, "bubble": bubble}
    raise KeyError(f"unknown part of the analyses {kind!r}")


def main(smk):
    p, out = smk.params, smk.output
    bayes = bool(out.posterior)
    moderators = sorted({c for by, where in p.where.items() for c in [by, *where]} | {c for s in p.sets for c in s}
                        | {c for e in p.metaregs for c in e["moderators"]})
    # the year and the moderator columns as typed (codes such as 01 stay codes)
    studies = read_results_tsv(smk.input.studies, text=["year", *moderators])
    trials = read_checked_trials(smk.input.checked)
    # independent parts, the longest first: spread over the rule's threads, concatenated in this order
    parts = [("fits", o) for o in p.outcomes] + [("overlap", None)] + [("moderator", by) for by in p.tables] + [
        (kind, o) for kind in ("cumulative", "metareg", "adjusted") for o in p.outcomes]
    results = dict(zip(parts, parallel_map(lambda part: part_tables(part, studies, trials, p, bayes), parts, smk.threads)))
    tables = {}
    # outcome by outcome, as one process would have written them; the other parts write tables of their own
    ordered = [(kind, o) for o in p.outcomes for kind in PER_OUTCOME] + [q for q in parts if q[0] not in PER_OUTCOME]
    for part in ordered:
        for name, table in results[part].items():
            tables.setdefault(name, []).append(table)
    tables = {name: pd.concat(pieces, ignore_index=True) for name, pieces in tables.items()}
    for name in ("pooled", "tests", "leave_one_out", "weights", "influence", "benchmarks", "cumulative",
                 "small_study", "overlap", "adjusted", "metareg", "bubble"):
        write_tsv(tables[name], getattr(out, name))
    for by, paths in p.tables.items():
        for key, path in paths.items():
            write_tsv(tables[f"subgroups/{by}/{key}"], path)
    write_tsv(methods_comparison(tables["pooled"], tables["tests"], p.outcomes[0]), out.methods)
    if bayes:
        write_tsv(tables["posterior"], out.posterior[0])
        write_tsv(tables["prior"], out.prior[0])
    write_tsv(funnel_table(studies, p.outcomes), out.funnel)


run(main, snakemake)
