"""Snakemake entry: the posterior figure (method bayes) of one outcome."""

from metaprop.analysis import modality_posteriors
from metaprop.bayes import describe_prior, settings_of
from metaprop.entry import run
from metaprop.extraction import outcome_title
from metaprop.plotting import save_figure
from metaprop.posterior_plot import posterior_figure
from metaprop.tables import read_results_tsv


def main(smk):
    p = smk.params
    settings = settings_of(p.bayes)
    posts = modality_posteriors(read_results_tsv(smk.input.studies), p.outcome, settings)
    prior = describe_prior(settings["mu_sd"], settings["tau_prior"], settings["tau_scale"])
    figure = posterior_figure(posts, settings["deltas"], outcome_title(p.outcome), p.level, prior)
    save_figure(figure, {"pdf": smk.output.pdf, "svg": smk.output.svg, "png": smk.output.png})


run(main, snakemake)
