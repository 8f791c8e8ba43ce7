"""Snakemake entry: studies.tsv -> results/tables/small_study_effects.tsv (Egger and Peters per modality)."""

import pandas as pd
from metaprop.entry import run
from metaprop.small_study import small_study_table
from metaprop.tables import read_results_tsv, write_tsv


def main(smk):
    studies = read_results_tsv(smk.input.studies)
    tables = [small_study_table(studies, outcome) for outcome in smk.params.outcomes]
    write_tsv(pd.concat(tables, ignore_index=True), smk.output[0])


run(main, snakemake)
