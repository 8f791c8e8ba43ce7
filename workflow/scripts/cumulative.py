"""Snakemake entry: studies.tsv -> results/tables/cumulative.tsv (every outcome, primary method and logit-REML)."""

import pandas as pd
from metaprop.cumulative import cumulative_table
from metaprop.entry import run
from metaprop.tables import read_results_tsv, write_tsv


def main(smk):
    p = smk.params
    studies = read_results_tsv(smk.input.studies, text=["year"])
    tables = [cumulative_table(studies, outcome, p.methods, p.level, p.nagq) for outcome in p.outcomes]
    write_tsv(pd.concat(tables, ignore_index=True), smk.output[0])


run(main, snakemake)
