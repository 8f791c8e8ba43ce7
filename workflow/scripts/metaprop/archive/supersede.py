"""The results of a run appear together or not at all.

A job that fails after others have finished leaves results/ with a mix: the new tables beside the old report and
archive, or a new report with no archive (Snakemake deletes the outputs of a failed job and of a job about to run,
and keeps those of the jobs that finished). So when a run stops with an error, what a reader opens or attaches (the
report and the archive) is moved out of results/ into results/superseded/, its report marked at the top, and
results/INCOMPLETE.txt says what happened; the next complete run writes them again and removes both.
"""

import html
import os
import shutil
import threading
import time
from pathlib import Path

from metaprop.archive.crate import UnreadableArchive, read_members

# what a reader opens or attaches, below results/: moved aside together (the report's tables of the previous run
# go along, so that the next run's "changes since the last run" still compares with the last complete run)
PUBLISHED = ("report.html", "report.md", "archive/meta-analysis.tar.gz", "archive/MANIFEST.sha256")
PREVIOUS = ("archive/previous_studies.tsv", "archive/previous_pooled.tsv")
SUPERSEDED_DIR = "superseded"
NOTICE = "INCOMPLETE.txt"
BANNER_START, BANNER_END = "<!-- superseded -->", "<!-- /superseded -->"


def banner_text(stamp, log):
    return (f"SUPERSEDED, NOT THE RESULT OF A COMPLETE RUN. A run of the pipeline stopped with an error on {stamp} "
            "before it had written all its results, so this report may describe other trial tables than the tables, "
            "figures and archive now in results/. Do not use or attach it. "
            + (f"Why the run stopped is in {log}; " if log else "")
            + "fix that and run snakemake again: the next complete run writes a new report and archive.")


def mark_html(text, banner):
    """The HTML report with `banner` as a red block at the top of its body."""
    block = (f'{BANNER_START}<div role="alert" style="background:#b00020;color:#fff;padding:1em;margin:0 0 1em 0;'
             f'font-weight:bold;font-size:1.2em">{html.escape(banner)}</div>{BANNER_END}')
    at = text.find(">", text.find("<body")) + 1 if "<body" in text else 0
    return text[:at] + block + text[at:]


def mark_markdown(text, banner):
    """The Markdown report with `banner` as a quoted paragraph before its first line."""
    return f"> **{banner}**\n\n{text}"


def in_progress_text(stamp):
    return (f"IN PROGRESS OR KILLED: a run of the pipeline started on {stamp} and has not finished. While it runs, and "
            "if it was killed (then no handler ran), the tables, figures, report and archive in results/ may be a mix "
            "of its outputs and earlier ones. Run snakemake again (after a kill: snakemake --unlock, then snakemake "
            "--cores 4 --rerun-incomplete); a complete run removes this file.\n")


def mark_in_progress(results="results", stamp=None):
    """onstart (jobs are about to run): results/INCOMPLETE.txt says a run is under way, so that a run killed
    outright leaves that said; a notice of an earlier failed run stays (no complete run has followed it)."""
    results = Path(results)
    results.mkdir(exist_ok=True)  # a first run has nothing to mix with, but a killed one leaves half its results
    if not (results / NOTICE).exists():
        stamp = stamp or time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        (results / NOTICE).write_text(in_progress_text(stamp), encoding="utf-8", newline="\n")


def supersede_published(results="results", log=None, stamp=None):
    """onerror: move the report and archive out of `results` into results/superseded/ (the report marked at its top)
    and write results/INCOMPLETE.txt. Returns the files moved (their paths below results/)."""
    results = Path(results)
    if not results.is_dir():
        return []
    stamp = stamp or time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if isinstance(log, (list, tuple)):  # Snakemake gives its log files as a list
        log = ", ".join(str(path) for path in log)
    folder = results / SUPERSEDED_DIR
    moved = [name for name in PUBLISHED + PREVIOUS if (results / name).is_file()]
    banner = banner_text(stamp, log)
    for name in moved:
        dest = folder / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(results / name, dest)
        if name in ("report.html", "report.md"):
            mark = mark_html if name == "report.html" else mark_markdown
            dest.write_text(mark(dest.read_text(encoding="utf-8"), banner), encoding="utf-8", newline="\n")
    if folder.is_dir():
        (folder / "README.txt").write_text(
            "The report and archive here were moved out of results/ because a later run stopped with an error "
            f"({stamp}) before it had written all its results. They are not the results of that run; the tables "
            "and figures in results/ may be. The next complete run writes a new report and archive in results/ and "
            "removes this folder.\n", encoding="utf-8", newline="\n")
    shown = [name for name in moved if name in PUBLISHED]
    where = f" Moved to {folder}/, marked superseded: {', '.join(shown)}." if shown else ""
    notice = (f"INCOMPLETE: the last run of the pipeline stopped with an error on {stamp}. The tables and figures in "
              f"{results}/ are a mix of that run's and earlier ones, and there is no report or archive here.{where}"
              + (f" Why the run stopped: {log}." if log else "")
              + " Fix the cause and run snakemake again; the next complete run removes this file.\n")
    (results / NOTICE).write_text(notice, encoding="utf-8", newline="\n")
    print(notice.strip(), flush=True)
    return moved


def clear_superseded(results="results"):
    """onsuccess: once a complete run's report and archive are in `results`, the marks of an earlier failed run go
    (a run of only some targets leaves them, and removes only its own notice that it was under way)."""
    results = Path(results)
    notice = results / NOTICE
    if all((results / name).is_file() for name in PUBLISHED):
        shutil.rmtree(results / SUPERSEDED_DIR, ignore_errors=True)
        notice.unlink(missing_ok=True)
    elif notice.is_file() and notice.read_text(encoding="utf-8").startswith("IN PROGRESS"):
        notice.unlink()  # this run (of some targets) finished, and no failed run is pending


def superseded(path, results="results"):
    """Where supersede_published moves `path` (below results/)."""
    return str(Path(results) / SUPERSEDED_DIR / Path(path).relative_to(results))


def previous_run(archive, results="results", unpacked="previous_run"):
    """(studies text, pooled text, why the archive could not be read) of the last complete run, each None when
    unknown: from its archive (`archive`, or the one a failed run moved aside); else, in an unpacked archive, from
    previous_run/; else from the tables of the last run that the report of a failed run had kept."""
    studies = pooled = unreadable = None
    for path in (archive, superseded(archive, results)):
        if os.path.isfile(path):
            try:
                texts = read_members(path, ["results/tables/studies.tsv", "results/tables/pooled.tsv"])
                studies, pooled = texts["results/tables/studies.tsv"], texts["results/tables/pooled.tsv"]
            except UnreadableArchive as err:  # a truncated or damaged archive is set aside: the new one replaces it
                unreadable = str(err)
            break
    for folder, names in ((unpacked, ("studies.tsv", "pooled.tsv")),
                          (superseded(os.path.join(results, "archive"), results), [Path(p).name for p in PREVIOUS])):
        if studies is None and os.path.isfile(os.path.join(folder, names[0])):
            texts = [Path(folder, name).read_text(encoding="utf-8") if os.path.isfile(os.path.join(folder, name))
                     else "" for name in names]
            studies, pooled = (text or None for text in texts)
    return studies, pooled, unreadable


def stop_requeue_timers():
    """Cancel the scheduler's pending re-evaluation (the Snakefile's onsuccess and onerror): Snakemake starts a 1 s
    threading.Timer after each scheduling round (its default --max-jobs-per-timespan 100/1s), a thread the process
    waits for before it exits."""
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer) and thread.function.__module__ == "snakemake.scheduling.job_scheduler":
            thread.cancel()
