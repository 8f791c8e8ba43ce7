"""Snakemake entry: results/tables/overlap_sensitivity.tsv and (method bayes) prior_sensitivity.tsv."""

from metaprop.analysis import overlap_sensitivity, prior_sensitivity
from metaprop.entry import run
from metaprop.inputs import read_checked_trials
from metaprop.spec import outcome_from
from metaprop.tables import read_results_tsv, write_tsv


def main(smk):
    p = smk.params
    trials = read_checked_trials(smk.input.checked)
    outcome = outcome_from(p.outcome)
    table = overlap_sensitivity(trials, outcome, p.method, p.rules, p.level, p.nagq, p.bayes, p.comparison)
    write_tsv(table, smk.output.overlap)
    if smk.output.prior:
        studies = read_results_tsv(smk.input.studies)
        write_tsv(prior_sensitivity(studies, outcome.id, p.bayes, p.level, p.comparison), smk.output.prior[0])


run(main, snakemake)
