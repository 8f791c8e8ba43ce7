"""Snakemake entry: the posterior figures (method bayes) of every outcome."""

from metaprop.analysis import modality_posteriors
from metaprop.bayes import describe_prior, settings_of
from metaprop.entry import run
from metaprop.names import outcome_title
from metaprop.plotting import save_figure
from metaprop.posterior_plot import posterior_figure
from metaprop.tables import read_results_tsv


def main(smk):
    p = smk.params
    settings = settings_of(p.bayes)
    studies = read_results_tsv(smk.input.studies)
    prior = describe_prior(settings["mu_sd"], settings["tau_prior"], settings["tau_scale"])
    for figure in p.figures.values():
        posts = modality_posteriors(studies, figure["outcome"], settings)
        drawn = posterior_figure(posts, settings["deltas"], outcome_title(figure["outcome"]), p.level, prior)
        save_figure(drawn, figure["files"])


run(main, snakemake)
