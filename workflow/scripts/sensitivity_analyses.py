"""Snakemake entry: results/tables/overlap_sensitivity.tsv (the primary analysis under every overlap rule), the
primary outcome regrouped by each moderator column and pooled with every method (results/tables/subgroups/), and
modality fitted together with moderators (results/tables/adjusted_comparisons.tsv), and the meta-regressions on numeric
moderators (results/tables/meta_regressions.tsv, the bubble plots' data in results/tables/bubble.tsv)."""

import pandas as pd
from metaprop.analysis.adjusted import adjusted_comparisons
from metaprop.analysis.meta_analysis import forest_weights, moderator_analysis, overlap_sensitivity
from metaprop.analysis.metareg import meta_regressions
from metaprop.entry import run
from metaprop.io.inputs import read_checked_trials
from metaprop.io.tables import read_results_tsv, write_tsv
from metaprop.spec import outcome_from


def main(smk):
    p = smk.params
    primary = outcome_from(p.primary)
    trials = read_checked_trials(smk.input.checked)
    write_tsv(overlap_sensitivity(trials, primary, p.method, p.rules, p.level, p.nagq, p.bayes, p.comparison),
              smk.output.overlap)
    moderators = sorted({c for by, where in p.where.items() for c in [by, *where]} | {c for s in p.sets for c in s}
                        | {c for e in p.metaregs for c in e["moderators"]})
    studies = read_results_tsv(smk.input.studies, text=moderators)
    for by, paths in p.tables.items():
        tables = moderator_analysis(studies, primary.id, by, p.where[by], p.across[by], p.methods, p.level, p.nagq)
        weights = forest_weights(tables[0], tables[1], primary.id, column="group")
        for table, key in zip((*tables, weights), ("studies", "pooled", "tests", "weights")):
            write_tsv(table, paths[key])
    adjusted = [adjusted_comparisons(studies, o, p.sets, p.level, p.nagq, p.comparison) for o in p.outcomes]
    write_tsv(pd.concat(adjusted, ignore_index=True), smk.output.adjusted)
    fits = [meta_regressions(studies, o, p.metaregs, p.comparison, p.level, p.nagq, p.bubble_method) for o in p.outcomes]
    write_tsv(pd.concat([f[0] for f in fits], ignore_index=True), smk.output.metareg)
    write_tsv(pd.concat([f[1] for f in fits], ignore_index=True), smk.output.bubble)


run(main, snakemake)
