"""Snakemake entry: the bubble plot of every one-moderator meta-regression of every outcome, drawn from
results/tables/bubble.tsv (groups without a fit say why, from results/tables/meta_regressions.tsv)."""

from metaprop.entry import run
from metaprop.figures.bubble import bubble_plot
from metaprop.figures.forest import save_figure
from metaprop.io.tables import read_results_tsv
from metaprop.spec import Outcomes, method


def main(smk):
    p = smk.params
    outcomes = Outcomes(p.outcomes)
    bubble = read_results_tsv(smk.input.bubble, text=["study", "line", "group"])
    table = read_results_tsv(smk.input.metareg, text=["group", "term"])
    for figure in p.figures.values():
        moderator, outcome = figure["moderator"], figure["outcome"]
        group = (bubble["group"] == "all") if figure["across"] else (bubble["group"] != "all")
        rows = bubble[(bubble["outcome"] == outcome) & (bubble["moderator"] == moderator) & group]
        fits = table[(table["outcome"] == outcome) & (table["moderators"] == moderator) & (table["method"] == p.method)
                     & ((table["group"] == "all") == figure["across"])]
        notes = {g: str(fits.loc[fits["group"] == g, "note"].iloc[0]) for g in dict.fromkeys(fits["group"])
                 if g not in set(rows["group"])}
        save_figure(bubble_plot(rows, outcomes[outcome], moderator, method(p.method).label, notes, p.level),
                    figure["files"])


run(main, snakemake)
