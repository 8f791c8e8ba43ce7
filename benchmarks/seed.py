"""The bundled seed (12 trials) cold, then rerun with nothing to do, beside a bare Snakefile and the metafor script
a user would write for the core of it (benchmarks/seed_metafor.R).

Run from the repository root: python benchmarks/seed.py [--repeat 3]

Each round copies this checkout to a temporary directory (no results, no .snakemake) and times
`snakemake --cores 4` there: wall time, and CPU time of Snakemake and every job it started (user + system, of
the reaped child processes). Then the same command with nothing to do, again after adding one trial to the table
(what a user does when a paper appears), and a Snakefile of one rule with nothing to do (Snakemake's own start-up). Each job's log ends with its own CPU seconds and peak memory: the table of
jobs comes from those lines. `Rscript benchmarks/seed_metafor.R` runs on the cold run's studies.tsv where R and
metafor are installed. The best of --repeat rounds is printed. Nothing is asserted.
"""

import argparse
import os
import platform
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY = ("Snakefile", "config.yaml", "workflow", "envs", "data", "profiles", "requirements.txt", "README.md")
BARE = 'rule all:\n    input: "x.txt"\n\nrule x:\n    output: "x.txt"\n    shell: "touch {output}"\n'


def timed(command, cwd):
    """(wall seconds, CPU seconds of the command and its children, completed process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd}:\n{done.stderr[-3000:]}")
    return wall, cpu, done


def job_costs(results):
    """{job log name: (CPU-s, peak MB)} from the last line of every job's log."""
    costs = {}
    for log in sorted((results / "logs").glob("*.log")):
        found = re.search(r"finished: ([0-9.]+) CPU-s, peak memory ([0-9]+) MB", log.read_text())
        if found:
            costs[log.stem] = (float(found[1]), int(found[2]))
    return costs


def one_round(snakemake):
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "seed"
        work.mkdir()
        for name in COPY:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))
            elif source.exists():
                shutil.copy(source, work / name)
        cold = timed([snakemake, "--cores", "4"], work)
        noop = timed([snakemake, "--cores", "4"], work)
        if "Nothing to be done" not in noop[2].stdout + noop[2].stderr:
            raise SystemExit("the second run was not a no-op")
        # a trial added to the table, as a user does when a paper appears: every job depends on the table
        with open(work / "data/raw/table1.tsv", "a", encoding="utf-8") as table:
            header = (work / "data/raw/table1.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
            cells = {"study": "Added 2026", "modality": "CAR-T", "n": "40", "cr_events": "30", "year": "2026"}
            table.write("\t".join(cells.get(column, "") for column in header) + "\n")
        added = timed([snakemake, "--cores", "4"], work)
        bare_dir = Path(tmp) / "bare"
        bare_dir.mkdir()
        (bare_dir / "Snakefile").write_text(BARE)
        timed([snakemake, "--cores", "1"], bare_dir)
        bare = timed([snakemake, "--cores", "1"], bare_dir)
        metafor = None
        if shutil.which("Rscript"):
            try:
                metafor = timed(["Rscript", str(ROOT / "benchmarks/seed_metafor.R"),
                                 "results/tables/studies.tsv", str(Path(tmp) / "forest.pdf")], work)
            except SystemExit as err:
                print(f"metafor script not run: {str(err).splitlines()[-1]}")
        return {"cold": cold[:2], "noop": noop[:2], "added": added[:2], "bare": bare[:2], "metafor": metafor and metafor[:2],
                "jobs": job_costs(work / "results")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    snakemake = shutil.which("snakemake")
    rounds = [one_round(snakemake) for _ in range(args.repeat)]
    best = min(rounds, key=lambda r: r["cold"][1])

    def best_of(key):
        runs = [r[key] for r in rounds if r[key]]
        return (min(w for w, _ in runs), min(c for _, c in runs)) if runs else None

    print(f"{'what':<52} | {'wall s':>7} | {'CPU s':>7}")
    lines = [("pipeline, cold: snakemake --cores 4 (all jobs)", best_of("cold")),
             ("pipeline, nothing to do: snakemake --cores 4", best_of("noop")),
             ("pipeline, after adding one trial to the table", best_of("added")),
             ("bare Snakefile, nothing to do (Snakemake start-up)", best_of("bare")),
             ("metafor script (seed_metafor.R: CIs, DL/REML/GLMM, forest)", best_of("metafor"))]
    for label, figures in lines:
        shown = f"{figures[0]:7.2f} | {figures[1]:7.2f}" if figures else "   not run (no R/metafor)"
        print(f"{label:<52} | {shown}")
    print(f"\nbest of {args.repeat} (minimum of each figure); jobs of the cold run with the least CPU:")
    print(f"{'job (its log)':<30} | {'CPU s':>6} | {'peak MB':>7}")
    for name, (cpu, peak) in best["jobs"].items():
        print(f"{name:<30} | {cpu:6.2f} | {peak:7d}")
    jobs = sum(cpu for cpu, _ in best["jobs"].values())
    print(f"{'all jobs':<30} | {jobs:6.2f} |\n{'Snakemake itself':<30} | {best['cold'][1] - jobs:6.2f} |")
    cpu = platform.processor() or platform.machine()
    print(f"\n{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
