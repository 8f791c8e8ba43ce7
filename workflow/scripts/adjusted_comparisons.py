"""Snakemake entry: results/tables/adjusted_comparisons.tsv (modality + moderators in one meta-regression)."""

import pandas as pd
from metaprop.adjusted import adjusted_comparisons
from metaprop.entry import run
from metaprop.tables import read_results_tsv, write_tsv


def main(smk):
    p = smk.params
    studies = read_results_tsv(smk.input.studies, text=sorted({c for mods in p.sets for c in mods}))
    table = pd.concat([adjusted_comparisons(studies, o, p.sets, p.level, p.nagq) for o in p.outcomes],
                      ignore_index=True)
    write_tsv(table, smk.output[0])


run(main, snakemake)
