"""A run's results appear together or not at all (issue 17, items 2 and 7).

Item 2: the extract job records the SHA-256 of the table bytes it read (results/tables/inputs.sha256); the report
and archive jobs compare them with the tables as they are when they run, and a table saved during the run stops
them, naming the file and both hashes. Item 7: a run that stops with an error leaves no report or archive in
results/: they are moved to results/superseded/, the report marked at its top, and results/INCOMPLETE.txt says so;
the next complete run writes them again and removes both.
"""

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import time

import pytest
from metaprop.archive.stale import stale_files
from metaprop.archive.supersede import (
    BANNER_END,
    BANNER_START,
    clear_superseded,
    mark_html,
    mark_in_progress,
    mark_markdown,
    previous_run,
    supersede_published,
)
from metaprop.io.provenance import InputChanged, digest_lines, read_digest_lines, verified_tables
from test_pipeline import finished, finished_copy, finished_run, snakemake  # noqa: F401 (the fixtures)

TABLE = "data/raw/table1.tsv"
PUBLISHED = ["results/report.html", "results/report.md", "results/archive/meta-analysis.tar.gz",
             "results/archive/MANIFEST.sha256"]


def row(study, n, events):
    """A trial row of the bundled table (23 cells, as its header): study, modality, n, cr_events."""
    return f"{study}\tCAR-T\t\t\t\t\t{n}\t\t{events}" + "\t" * 14 + "\n"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unmarked(text):
    """A report marked superseded as it was before the mark."""
    text = re.sub(re.escape(BANNER_START) + ".*?" + re.escape(BANNER_END), "", text, flags=re.DOTALL)
    return text.split("\n\n", 1)[1] if text.startswith("> **SUPERSEDED") else text


# --- the library ---

def test_digest_lines_round_trip_and_name_each_changed_table(tmp_path):
    table = tmp_path / "t.tsv"
    table.write_text("study\tmodality\tn\tcr_events\nA\tX\t10\t5\n")
    before = sha256(table)
    record = tmp_path / "inputs.sha256"
    record.write_text(digest_lines({"data/t 1.tsv": before, "a.tsv": "0" * 64}))
    recorded = read_digest_lines(record.read_text())
    assert recorded == {"data/t 1.tsv": before, "a.tsv": "0" * 64}
    names = {str(table): "data/t 1.tsv"}
    # unchanged: no error, and the bytes read for the check are the table's
    assert verified_tables(record, names, "report") == {str(table): table.read_bytes()}
    table.write_text(table.read_text() + "B\tX\t10\t6\n")
    with pytest.raises(InputChanged) as err:
        verified_tables(record, names, "report")
    message = str(err.value)
    assert f"{table} changed during the run" in message and before in message and sha256(table) in message
    assert f"recorded in {record}" in message
    assert "The report was not written" in message and "run snakemake again" in message
    table.unlink()
    with pytest.raises(InputChanged, match="no longer exists"):
        verified_tables(record, names, "archive")


def test_marks_stand_at_the_top_of_the_reports():
    marked = mark_html("<!DOCTYPE html><html><head><title>t</title></head><body>\n<h1>R</h1></body></html>", "Old <b>")
    assert marked.index("<body>") + len("<body>") == marked.index(BANNER_START)
    assert 'role="alert"' in marked and "Old &lt;b&gt;" in marked and marked.index(BANNER_END) < marked.index("<h1>")
    assert mark_markdown("# R\n", "Old").startswith("> **Old**\n\n# R")


def test_a_failed_run_moves_report_and_archive_aside_and_a_complete_one_clears_the_marks(tmp_path):
    results = tmp_path / "results"
    for name, text in (("report.html", "<html><body><h1>R</h1></body></html>"), ("report.md", "# R\n"),
                       ("archive/meta-analysis.tar.gz", "tar"), ("archive/MANIFEST.sha256", "m"),
                       ("archive/previous_studies.tsv", "study\n"), ("tables/pooled.tsv", "p\n")):
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        (results / name).write_text(text)
    moved = supersede_published(results, log=["x.log"], stamp="T")
    assert set(moved) == {"report.html", "report.md", "archive/meta-analysis.tar.gz", "archive/MANIFEST.sha256",
                          "archive/previous_studies.tsv"}
    assert not (results / "report.html").exists() and (results / "tables/pooled.tsv").exists()
    assert "SUPERSEDED" in (results / "superseded/report.html").read_text()
    notice = (results / "INCOMPLETE.txt").read_text()
    assert "stopped with an error on T" in notice and "x.log" in notice and "no report or archive" in notice
    # another configuration's leftovers are moved aside on success, the failed run's marks are not
    assert stale_files(results, {str(results / "tables/pooled.tsv")}) == []
    # a run of some targets only (no archive yet) keeps the marks; a complete one removes them
    (results / "report.html").write_text("new")
    clear_superseded(results)
    assert (results / "INCOMPLETE.txt").exists() and (results / "superseded").is_dir()
    for name in ("report.md", "archive/meta-analysis.tar.gz", "archive/MANIFEST.sha256"):
        (results / name).write_text("new")
    clear_superseded(results)
    assert not (results / "INCOMPLETE.txt").exists() and not (results / "superseded").exists()


def test_a_run_under_way_says_so_until_it_finishes(tmp_path):
    results = tmp_path / "results"
    mark_in_progress(results, stamp="T")  # a first run: results/ is made to hold the notice
    assert (results / "INCOMPLETE.txt").read_text().startswith("IN PROGRESS OR KILLED: a run of the pipeline started "
                                                                "on T and has not finished.")
    clear_superseded(results)  # finished (some targets only): the run's own notice goes
    assert not (results / "INCOMPLETE.txt").exists()
    supersede_published(results, stamp="T")  # a failed run's notice stays through the next run's start...
    mark_in_progress(results, stamp="U")
    assert "stopped with an error on T" in (results / "INCOMPLETE.txt").read_text()
    clear_superseded(results)  # ...and a run of some targets only, with no report or archive
    assert (results / "INCOMPLETE.txt").exists()


def test_the_previous_run_is_read_from_the_archive_a_failed_run_moved_aside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert previous_run("results/archive/meta-analysis.tar.gz") == (None, None, None)
    # the report of a failed run had kept the last run's tables beside the archive it read
    kept = tmp_path / "results/superseded/archive"
    kept.mkdir(parents=True)
    (kept / "previous_studies.tsv").write_text("study\nA\n")
    (kept / "previous_pooled.tsv").write_text("")
    assert previous_run("results/archive/meta-analysis.tar.gz") == ("study\nA\n", None, None)
    # an archive moved aside comes first
    member = tmp_path / "member"
    (member / "results/tables").mkdir(parents=True)
    (member / "results/tables/studies.tsv").write_text("study\nB\n")
    with tarfile.open(kept / "meta-analysis.tar.gz", "w:gz") as tar:
        tar.add(member / "results", arcname="meta-analysis/results")
    assert previous_run("results/archive/meta-analysis.tar.gz")[0] == "study\nB\n"


# --- through Snakemake ---

def test_a_table_saved_during_the_run_stops_the_report_then_a_rerun_extracts_it(finished_copy):  # noqa: F811 (the fixture)
    project = finished_copy
    table = project / TABLE
    table.write_text(table.read_text() + row("NewA 2026", 40, 30))
    extracted = sha256(table)
    studies = project / "results/tables/studies.tsv"
    before = studies.stat().st_mtime_ns
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "4"], cwd=project, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # the edit lands once the extract job has written studies.tsv, before the report job (which needs every table
    # and figure) starts
    while studies.exists() and studies.stat().st_mtime_ns == before and run.poll() is None:
        time.sleep(0.02)
    table.write_text(table.read_text() + row("NewB 2026", 50, 20))
    # while jobs run, results/ says that it may be a mix
    assert (project / "results/INCOMPLETE.txt").read_text().startswith("IN PROGRESS OR KILLED: a run of the pipeline")
    output = run.communicate(timeout=900)[0]
    assert run.returncode != 0
    assert (f"{TABLE} changed during the run: the trials were extracted from bytes with SHA-256 {extracted} "
            f"(recorded in results/tables/inputs.sha256); the file now has SHA-256 {sha256(table)}.") in output
    assert "The report was not written" in output and "run snakemake again" in output
    assert "Traceback" not in output.split("Error in rule report:", 1)[0]
    for path in PUBLISHED:  # no report or archive describes this run
        assert not (project / path).exists(), path
    assert "stopped with an error" in (project / "results/INCOMPLETE.txt").read_text()
    # the rerun extracts the table as it is now, and the report certifies those bytes
    again = snakemake(project)
    assert again.returncode == 0, again.stderr
    assert "NewB 2026" in studies.read_text()
    assert (project / "results/tables/inputs.sha256").read_text() == f"{sha256(table)}  {TABLE}\n"
    report = (project / "results/report.md").read_text()
    assert f"| {TABLE} | {sha256(table)} |" in report and "Added: NewA 2026; NewB 2026." in report
    assert not (project / "results/INCOMPLETE.txt").exists() and not (project / "results/superseded").exists()


def test_a_table_changed_after_the_report_stops_the_archive(finished_copy):  # noqa: F811 (the fixture)
    project = finished_copy
    table = project / TABLE
    recorded = sha256(table)
    table.write_text(table.read_text() + row("NewA 2026", 40, 30))
    # only the archive job may run: as if the table had been saved after the report job had finished
    run = snakemake(project, "--allowed-rules", "archive")
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert (f"{TABLE} changed during the run: the trials were extracted from bytes with SHA-256 {recorded} "
            f"(recorded in results/tables/inputs.sha256); the file now has SHA-256 {sha256(table)}.") in output
    assert "The archive was not written" in output
    for path in PUBLISHED:
        assert not (project / path).exists(), path


def test_the_normal_path_records_what_was_read(finished):  # noqa: F811
    assert (finished / "results/tables/inputs.sha256").read_text() == f"{sha256(finished / TABLE)}  {TABLE}\n"
    with tarfile.open(finished / "results/archive/meta-analysis.tar.gz") as tar:
        root = tar.getnames()[0].split("/")[0]
        recorded = tar.extractfile(f"{root}/results/tables/inputs.sha256").read().decode()
    assert recorded == f"{sha256(finished / TABLE)}  {TABLE}\n"
    assert not (finished / "results/INCOMPLETE.txt").exists() and not (finished / "results/superseded").exists()


@pytest.mark.parametrize("failing", ["figures", "archive"])
def test_a_late_job_failing_publishes_no_mix(finished_copy, tmp_path, failing):  # noqa: F811 (the fixture)
    project = finished_copy
    """A failure injected into a late job (a sitecustomize on PYTHONPATH that stops that job's script, no code path
    of the pipeline's own): no report or archive stays in results/ beside the new tables; the ones moved aside are
    marked superseded at their top; a rerun publishes the run whole."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        f"import sys\nif sys.argv and sys.argv[0].endswith('.{failing}.py'):\n"
        "    raise SystemExit('injected failure')\n")
    old = {path: (project / path).read_bytes() for path in PUBLISHED}
    table = project / TABLE
    table.write_text(table.read_text() + row("NewA 2026", 40, 30))
    env = {**os.environ, "PYTHONPATH": str(hook)}
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "4"], cwd=project, env=env, check=False,
                         capture_output=True, text=True)
    assert run.returncode != 0
    results = project / "results"
    assert "NewA 2026" in (results / "tables/studies.tsv").read_text()  # the new run's tables are there...
    for path in PUBLISHED:  # ...and no report or archive beside them
        assert not (project / path).exists(), path
    notice = (results / "INCOMPLETE.txt").read_text()
    assert "stopped with an error" in notice and "no report or archive here" in notice
    assert "INCOMPLETE: the last run of the pipeline stopped with an error" in run.stdout + run.stderr
    html = (results / "superseded/report.html").read_text()
    body = html.index("<body>") + len("<body>")
    assert html[body:].startswith(BANNER_START) and "SUPERSEDED, NOT THE RESULT OF A COMPLETE RUN" in html
    assert (results / "superseded/report.md").read_text().startswith("> **SUPERSEDED, NOT THE RESULT OF A COMPLETE")
    superseded_report = (results / "superseded/report.md").read_text()
    if failing == "figures":  # the report and archive of the last complete run, moved whole
        assert unmarked(superseded_report).encode() == old["results/report.md"]
        for path in PUBLISHED[2:]:
            assert (results / "superseded" / path.removeprefix("results/")).read_bytes() == old[path]
    else:  # the new report (the archive job deleted the old archive as it started)
        assert "Added: NewA 2026." in superseded_report
    again = snakemake(project)
    assert again.returncode == 0, again.stderr
    for path in PUBLISHED:
        assert (project / path).exists(), path
    assert not (results / "INCOMPLETE.txt").exists() and not (results / "superseded").exists()
    report = (results / "report.md").read_text()
    assert "Added: NewA 2026." in report  # still compared with the last complete run
    if failing == "archive":  # the report the failed run wrote, rewritten byte for byte
        assert report == unmarked(superseded_report)


def test_the_run_ends_without_waiting_for_snakemakes_requeue_timer():
    import threading

    from metaprop.archive.supersede import stop_requeue_timers

    def requeue():
        pass

    requeue.__module__ = "snakemake.scheduling.job_scheduler"  # as the scheduler's lambda is
    theirs, other = threading.Timer(60, requeue), threading.Timer(60, lambda: None)
    theirs.start()
    other.start()
    try:
        stop_requeue_timers()
        theirs.join(timeout=5)
        assert not theirs.is_alive() and other.is_alive()  # another module's timer is left alone
    finally:
        other.cancel()
