"""Snakemake entry: results/tables/prior_sensitivity.tsv (method bayes under several priors of tau)."""

from metaprop.analysis import prior_sensitivity
from metaprop.entry import run
from metaprop.tables import read_results_tsv, write_tsv


def main(smk):
    p = smk.params
    write_tsv(prior_sensitivity(read_results_tsv(smk.input.studies), p.outcome, p.bayes, p.level), smk.output[0])


run(main, snakemake)
