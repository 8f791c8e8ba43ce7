"""Snakemake entry: studies.tsv -> results/tables/cumulative.tsv (every outcome, primary method and logit-REML)
and small_study_effects.tsv (Egger and Peters per modality)."""

import pandas as pd
from metaprop.analysis.cumulative import cumulative_methods, cumulative_table
from metaprop.analysis.small_study import funnel_table, small_study_table
from metaprop.entry import run
from metaprop.io.tables import read_results_tsv, write_tsv


def main(smk):
    p = smk.params
    studies = read_results_tsv(smk.input.studies, text=["year"])
    methods = cumulative_methods(p.primary_method)
    cumulative = [cumulative_table(studies, outcome, methods, p.level, p.nagq) for outcome in p.outcomes]
    write_tsv(pd.concat(cumulative, ignore_index=True), smk.output.cumulative)
    write_tsv(pd.concat([small_study_table(studies, o) for o in p.outcomes], ignore_index=True),
              smk.output.small_study)
    write_tsv(funnel_table(studies, p.outcomes), smk.output.funnel)


run(main, snakemake)
