"""results/ after a run holds this configuration's outputs only: files an earlier configuration left (another
dataset's forest plots, a moderator analysis no longer configured) are moved aside into results/stale/<time>/."""

import shutil
import time
from pathlib import Path

from metaprop.archive.supersede import NOTICE, SUPERSEDED_DIR

STALE_DIR = "stale"
# what a failed run left for the next complete run to remove (archive/supersede.py), not another configuration's
KEPT = {SUPERSEDED_DIR, NOTICE}


def expected_files(workflow, targets):
    """Every output and log of the current configuration: the jobs of this run's DAG, and the products of every
    rule that makes one of the default targets (so a run of one target does not move the others aside)."""
    expected = {str(t) for t in targets}
    if workflow.dag is not None:
        for job in workflow.dag.jobs:
            expected.update(str(f) for f in (*job.output, *job.log))
    for rule in workflow.rules:
        for target in expected.copy() & {str(t) for t in targets}:
            if rule.has_products() and rule.is_producer(target):
                wildcards = rule.get_wildcards(target)
                expected.update(str(p.apply_wildcards(wildcards)) for p in rule.products())
    return {str(Path(p)) for p in expected}


def stale_files(results, expected):
    """Files under `results` that are not expected, outside results/stale/, in sorted order."""
    results = Path(results)
    keep = {str(Path(p)) for p in expected}
    return sorted(str(p) for p in results.rglob("*")
                  if (p.is_file() or p.is_symlink()) and p.relative_to(results).parts[0] not in {STALE_DIR, *KEPT}
                  and str(p) not in keep)


def move_aside(files, results, stamp=None):
    """Move `files` into results/stale/<UTC time>/ keeping their paths below results/; empty folders left behind
    are removed. Returns the folder, or None when there was nothing to move."""
    if not files:
        return None
    results = Path(results)
    stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder, suffix = results / STALE_DIR / stamp, 1
    while folder.exists():  # two runs within one second
        suffix += 1
        folder = results / STALE_DIR / f"{stamp}-{suffix}"
    for file in files:
        dest = folder / Path(file).relative_to(results)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(file, dest)
    for directory in sorted((p for p in results.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if directory.relative_to(results).parts[0] not in {STALE_DIR, *KEPT} and not any(directory.iterdir()):
            directory.rmdir()
    return folder


def move_stale_results(workflow, targets, results="results"):
    """onsuccess: move what an earlier configuration left in results/ aside, and say so."""
    if not Path(results).is_dir():
        return
    files = stale_files(results, expected_files(workflow, targets))
    folder = move_aside(files, results)
    if folder:
        print(f"Moved {len(files)} file(s) an earlier configuration left in {results}/ to {folder}/ "
              f"(not outputs of this configuration): {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}")
