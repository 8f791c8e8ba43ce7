"""Snakemake entry: the checked trial-table rows -> results/tables/studies.tsv, and the SHA-256 of the tables they
were read from -> results/tables/inputs.sha256."""

from metaprop.analysis.extraction import studies_table
from metaprop.entry import run
from metaprop.io.inputs import read_checked_sources, read_checked_trials
from metaprop.io.provenance import digest_lines
from metaprop.io.tables import write_tsv
from metaprop.spec import Outcomes


def main(smk):
    p = smk.params
    trials = read_checked_trials(smk.input.checked)
    trials["source_file"] = trials["source_file"].map(p.source_names)
    write_tsv(studies_table(trials, list(Outcomes(p.outcomes)), p.ci_method, p.overlap_rule, p.level, p.carry),
              smk.output.studies)
    # the bytes these rows come from, by their names in the archive: the report and archive jobs compare them
    sources = read_checked_sources(smk.input.checked)
    with open(smk.output.read, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(digest_lines({p.source_names[path]: digest for path, digest in sources.items()}))


run(main, snakemake)
