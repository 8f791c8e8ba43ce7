"""Snakemake entry: results/archive/meta-analysis.tar.gz and its MANIFEST.sha256."""

from metaprop.archiving import manifest, write_archive
from metaprop.entry import run


def main(smk):
    paths = sorted(set(smk.input.results) | set(smk.input.sources))
    text = manifest(paths)
    write_archive(paths, text, smk.output.archive)
    with open(smk.output.manifest, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


run(main, snakemake)
