"""Snakemake entry: the posterior figures (method bayes) of every outcome, drawn from results/tables/posterior_curves.tsv."""

from metaprop.entry import run
from metaprop.figures.forest import save_figure
from metaprop.figures.posterior import curves_from_table, draw_posterior
from metaprop.io.tables import read_results_tsv
from metaprop.spec import Outcomes


def main(smk):
    p = smk.params
    outcomes = Outcomes(p.outcomes)
    table = read_results_tsv(smk.input.curves[0])
    for figure in p.figures.values():
        curves = curves_from_table(table, figure["outcome"], p.level)
        save_figure(draw_posterior(curves, outcomes[figure["outcome"]].label, p.prior), figure["files"])


run(main, snakemake)
