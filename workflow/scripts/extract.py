"""Snakemake entry: the checked trial-table rows -> results/tables/studies.tsv."""

from metaprop.analysis.extraction import studies_table
from metaprop.entry import run
from metaprop.io.inputs import read_checked_trials
from metaprop.io.tables import write_tsv
from metaprop.spec import Outcomes


def main(smk):
    p = smk.params
    trials = read_checked_trials(smk.input.checked)
    trials["source_file"] = trials["source_file"].map(p.source_names)
    write_tsv(studies_table(trials, list(Outcomes(p.outcomes)), p.ci_method, p.overlap_rule, p.level, p.carry),
              smk.output[0])


run(main, snakemake)
