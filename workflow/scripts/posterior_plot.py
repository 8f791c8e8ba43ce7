"""Snakemake entry: the posterior figures (method bayes) of every outcome."""

from metaprop.bayes import describe_prior, settings_of
from metaprop.entry import run
from metaprop.plotting import save_figure
from metaprop.posterior_plot import draw_posterior, outcome_curves
from metaprop.spec import Outcomes
from metaprop.tables import read_results_tsv


def main(smk):
    p = smk.params
    settings = settings_of(p.bayes)
    outcomes = Outcomes(p.outcomes)
    studies = read_results_tsv(smk.input.studies)
    prior = describe_prior(settings["mu_sd"], settings["tau_prior"], settings["tau_scale"])
    for figure in p.figures.values():
        curves = outcome_curves(studies, figure["outcome"], p.bayes, p.level, p.comparison)
        save_figure(draw_posterior(curves, outcomes[figure["outcome"]].label, prior), figure["files"])


run(main, snakemake)
