"""Snakemake entry: results/tables/overlap_sensitivity.tsv and (method bayes) prior_sensitivity.tsv."""

from metaprop.analysis import overlap_sensitivity, prior_sensitivity
from metaprop.entry import run
from metaprop.tables import read_results_tsv, read_trials, write_tsv


def main(smk):
    p = smk.params
    trials = read_trials(list(smk.input.tables))
    table = overlap_sensitivity(trials, p.outcome, p.method, p.rules, p.level, p.nagq, p.bayes)
    write_tsv(table, smk.output.overlap)
    if smk.output.prior:
        studies = read_results_tsv(smk.input.studies)
        write_tsv(prior_sensitivity(studies, p.outcome, p.bayes, p.level), smk.output.prior[0])


run(main, snakemake)
