"""Snakemake entry: the primary outcome regrouped by each moderator column and pooled with every method, and
modality fitted together with moderators (results/tables/adjusted_comparisons.tsv)."""

import pandas as pd
from metaprop.adjusted import adjusted_comparisons
from metaprop.analysis import POOLED_COLUMNS, TEST_COLUMNS, pool_outcome, regroup, within_modality_tests
from metaprop.entry import run
from metaprop.tables import read_results_tsv, write_tsv


def subgroup_tables(studies, p, by):
    """(studies, pooled, tests) of the primary outcome grouped by the column `by`."""
    where = p.where[by]
    studies = regroup(studies, p.outcome, by, where, within_modality=not p.across[by])
    if not studies["included"].any():  # nothing known to group by: empty tables, and the report says so
        return studies, *(studies.iloc[:0].reindex(columns=cols) for cols in (POOLED_COLUMNS, TEST_COLUMNS))
    pooled, tests = pool_outcome(studies, p.outcome, p.methods, p.level, p.nagq)
    if not p.across[by]:  # groups are modality x level: compare levels inside each modality only
        within = within_modality_tests(studies, p.outcome, p.methods, p.level, p.nagq)
        tests = tests.iloc[:0] if within is None else within.reindex(columns=tests.columns)
    return studies, pooled, tests


def main(smk):
    p = smk.params
    moderators = sorted({c for by, where in p.where.items() for c in [by, *where]} | {c for s in p.sets for c in s})
    studies = read_results_tsv(smk.input.studies, text=moderators)
    for by, paths in p.tables.items():
        for table, key in zip(subgroup_tables(studies, p, by), ("studies", "pooled", "tests")):
            write_tsv(table, paths[key])
    adjusted = [adjusted_comparisons(studies, o, p.sets, p.level, p.nagq) for o in p.outcomes]
    write_tsv(pd.concat(adjusted, ignore_index=True), smk.output.adjusted)


run(main, snakemake)
