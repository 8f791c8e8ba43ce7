"""Snakemake entry: results/tables/overlap_sensitivity.tsv, the primary analysis under every overlap rule."""

from metaprop.analysis.meta_analysis import overlap_sensitivity
from metaprop.entry import run
from metaprop.io.inputs import read_checked_trials
from metaprop.io.tables import write_tsv
from metaprop.spec import outcome_from


def main(smk):
    p = smk.params
    trials = read_checked_trials(smk.input.checked)
    table = overlap_sensitivity(trials, outcome_from(p.outcome), p.method, p.rules, p.level, p.nagq, p.bayes,
                                p.comparison)
    write_tsv(table, smk.output.overlap)


run(main, snakemake)
