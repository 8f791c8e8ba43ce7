"""Snakemake entry: trial tables -> results/tables/studies.tsv."""

from metaprop.entry import run
from metaprop.extraction import studies_table
from metaprop.tables import read_trials, write_tsv


def main(smk):
    p = smk.params
    trials = read_trials(list(smk.input.tables))
    trials["source_file"] = trials["source_file"].map(p.source_names)
    write_tsv(studies_table(trials, p.outcomes, p.ci_method, p.overlap_rule, p.level, p.carry), smk.output[0])


run(main, snakemake)
