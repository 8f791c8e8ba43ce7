"""Snakemake entry: the cumulative forest plot of one outcome with the primary method."""

from metaprop.entry import run
from metaprop.plotting import save_figure
from metaprop.review_plots import cumulative_plot
from metaprop.tables import read_results_tsv


def main(smk):
    p = smk.params
    table = read_results_tsv(smk.input.cumulative, text=["year"])
    table = table[(table["outcome"] == p.outcome) & (table["method"] == p.method)]
    figure = cumulative_plot(table, p.method, p.outcome, p.level)
    save_figure(figure, {"pdf": smk.output.pdf, "svg": smk.output.svg, "png": smk.output.png})


run(main, snakemake)
