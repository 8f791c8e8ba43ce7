"""Snakemake entry: the flow diagram of the selection of cohorts, from studies.tsv alone."""

from metaprop.entry import run
from metaprop.flow import flow_counts
from metaprop.plotting import save_figure
from metaprop.review_plots import flow_diagram
from metaprop.tables import read_results_tsv


def main(smk):
    figure = flow_diagram(flow_counts(read_results_tsv(smk.input.studies)))
    save_figure(figure, {"pdf": smk.output.pdf, "svg": smk.output.svg, "png": smk.output.png})


run(main, snakemake)
