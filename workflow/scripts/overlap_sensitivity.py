"""Snakemake entry: results/tables/overlap_sensitivity.tsv."""

from metaprop.analysis import overlap_sensitivity
from metaprop.entry import run
from metaprop.tables import read_trials, write_tsv


def main(smk):
    p = smk.params
    trials = read_trials(list(smk.input.tables))
    table = overlap_sensitivity(trials, p.outcome, p.method, p.rules, p.ci_method, p.level, p.nagq, p.bayes)
    write_tsv(table, smk.output[0])


run(main, snakemake)
