"""Snakemake entry: the primary outcome regrouped by one moderator column, pooled with every method."""

from metaprop.analysis import POOLED_COLUMNS, TEST_COLUMNS, pool_outcome, regroup, within_modality_tests
from metaprop.entry import run
from metaprop.tables import read_results_tsv, write_tsv


def main(smk):
    p, out = smk.params, smk.output
    by = smk.wildcards.by
    studies = regroup(read_results_tsv(smk.input.studies, text=[by, *p.where]), p.outcome, by, p.where,
                      within_modality=not p.across)
    write_tsv(studies, out.studies)
    if studies["included"].any():
        pooled, tests = pool_outcome(studies, p.outcome, p.methods, p.level, p.nagq)
        if not p.across:  # groups are modality x level: compare levels inside each modality only
            within = within_modality_tests(studies, p.outcome, p.methods, p.level, p.nagq)
            tests = tests.iloc[:0] if within is None else within.reindex(columns=tests.columns)
    else:  # nothing known to group by: empty tables, and the report says so
        pooled, tests = (studies.iloc[:0].reindex(columns=cols) for cols in (POOLED_COLUMNS, TEST_COLUMNS))
    write_tsv(pooled, out.pooled)
    write_tsv(tests, out.tests)


run(main, snakemake)
