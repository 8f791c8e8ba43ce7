"""Snakemake entry: the funnel plots of one outcome, a panel per modality, with the small-study verdict."""

from metaprop.entry import run
from metaprop.plotting import save_figure
from metaprop.review_plots import funnel_plot
from metaprop.small_study import funnel_data
from metaprop.tables import read_results_tsv


def main(smk):
    p = smk.params
    studies = read_results_tsv(smk.input.studies)
    tests = read_results_tsv(smk.input.tests)
    tests = tests[tests["outcome"] == p.outcome]
    figure = funnel_plot(funnel_data(studies, p.outcome), tests, p.outcome, p.level)
    save_figure(figure, {"pdf": smk.output.pdf, "svg": smk.output.svg, "png": smk.output.png})


run(main, snakemake)
