"""Snakemake entry: the primary outcome regrouped by each moderator column and pooled with every method, and
modality fitted together with moderators (results/tables/adjusted_comparisons.tsv)."""

import pandas as pd
from metaprop.analysis.adjusted import adjusted_comparisons
from metaprop.analysis.meta_analysis import forest_weights, moderator_analysis
from metaprop.entry import run
from metaprop.io.tables import read_results_tsv, write_tsv


def main(smk):
    p = smk.params
    moderators = sorted({c for by, where in p.where.items() for c in [by, *where]} | {c for s in p.sets for c in s})
    studies = read_results_tsv(smk.input.studies, text=moderators)
    for by, paths in p.tables.items():
        tables = moderator_analysis(studies, p.outcome, by, p.where[by], p.across[by], p.methods, p.level, p.nagq)
        weights = forest_weights(tables[0], tables[1], p.outcome, column="group")
        for table, key in zip((*tables, weights), ("studies", "pooled", "tests", "weights")):
            write_tsv(table, paths[key])
    adjusted = [adjusted_comparisons(studies, o, p.sets, p.level, p.nagq, p.comparison) for o in p.outcomes]
    write_tsv(pd.concat(adjusted, ignore_index=True), smk.output.adjusted)


run(main, snakemake)
