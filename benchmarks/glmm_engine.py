"""The `pool` rule on synthetic tables of 100 (6 groups), 1,000 and 10,000 trials, and GLMM leave-one-out beside
a metafor loop.

Run from the repository root: python benchmarks/glmm_engine.py [--sizes 100 1000 10000] [--old]

Each table is seeded (`numpy.random.default_rng(SEED)`): groups with logit means from -4 to 1.5, a trial's
logit ~ N(group mean, 0.8^2), n ~ integers 10 to 400, and one trial in ten forced to 0 events. In a temporary
copy of this checkout the table is extracted first (untimed), then `snakemake --cores 2 ... pooled.tsv` runs
the `pool` rule alone with the default config: its wall time, CPU time and peak memory (of Snakemake's child
processes) are printed. `--old` also times the engine this project had before (glmm.py of commit d0e71e6) on the
100-trial table. Nothing is asserted.
"""

import argparse
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))
from metaprop.stats.glmm import leave_one_out_glmm

SEED = 20261125
OLD_ENGINE = "d0e71e6"
SHAPES = {100: 6, 1000: 2, 10000: 2}  # trials: groups
R_LOOP = r"""
suppressPackageStartupMessages(library(metafor))
d <- read.delim(commandArgs(trailingOnly = TRUE)[1])
secs <- system.time(for (i in seq_len(nrow(d)))
  try(rma.glmm(measure = "PLO", xi = cr_events, ni = n, data = d[-i, ]), silent = TRUE))[["elapsed"]]
cat(secs, packageVersion("metafor") |> as.character(), "\n")
"""


def table(k, groups):
    rng = np.random.default_rng(SEED + k)
    means = np.linspace(-4, 1.5, groups)
    rows = ["study\tmodality\tn\tcr_events"]
    for i in range(k):
        g = i % groups
        n = int(rng.integers(10, 401))
        events = 0 if rng.random() < 0.1 else int(rng.binomial(n, 1 / (1 + np.exp(-(means[g] + rng.normal(0, 0.8))))))
        rows.append(f"T{i:05d}\tG{g}\t{n}\t{events}")
    return "\n".join(rows) + "\n"


def copy_checkout(where, old):
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, where / name)
    for name in ("workflow", "envs"):
        shutil.copytree(ROOT / name, where / name, ignore=shutil.ignore_patterns("__pycache__"))
    if old:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_ENGINE}:workflow/scripts/metaprop/glmm.py"],
                                capture_output=True, text=True, check=True).stdout
        (where / "workflow" / "scripts" / "metaprop" / "glmm.py").write_text(source)
        for name in ("analysis.py",):  # the analysis module that went with it
            source = subprocess.run(["git", "-C", str(ROOT), "show", f"{OLD_ENGINE}:workflow/scripts/metaprop/{name}"],
                                    capture_output=True, text=True, check=True).stdout
            (where / "workflow" / "scripts" / "metaprop" / name).write_text(source)


def time_pool_rule(k, old=False):
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        copy_checkout(where, old)
        (where / "data" / "raw").mkdir(parents=True)
        (where / "data" / "raw" / "bench.tsv").write_text(table(k, SHAPES[k]))
        command = [sys.executable, "-m", "snakemake", "--cores", "2", "--quiet", "all", "--config",
                   "trials=[data/raw/bench.tsv]", "--"]
        subprocess.run(command + ["results/tables/studies.tsv"], cwd=where, check=True, capture_output=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command + ["results/tables/pooled.tsv"], cwd=where, check=True, capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return wall, cpu, after.ru_maxrss / 1024


def leave_one_out_side_by_side():
    """GLMM leave-one-out of the 100-trial table's overall set: ours beside a metafor loop."""
    lines = table(100, SHAPES[100]).splitlines()[1:]
    n = np.array([float(line.split("\t")[2]) for line in lines])
    events = np.array([float(line.split("\t")[3]) for line in lines])
    start = time.process_time()
    leave_one_out_glmm(events, n)
    ours = time.process_time() - start
    metafor = "not installed"
    if shutil.which("Rscript"):
        with tempfile.NamedTemporaryFile("w", suffix=".tsv") as data, tempfile.NamedTemporaryFile("w", suffix=".R") as r:
            data.write(table(100, SHAPES[100]))
            data.flush()
            r.write(R_LOOP)
            r.flush()
            out = subprocess.run(["Rscript", r.name, data.name], check=False, capture_output=True, text=True)
            if out.returncode == 0:
                secs, version = out.stdout.split()
                metafor = f"{float(secs):.1f} s (metafor {version}, rma.glmm loop)"
    return ours, metafor


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], choices=sorted(SHAPES))
    parser.add_argument("--old", action="store_true", help="also time the old engine on 100 trials (minutes)")
    args = parser.parse_args()
    cpu_name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), platform.processor())
    print(f"{platform.python_version()} on {cpu_name}, {len(__import__('os').sched_getaffinity(0))} cores")
    print(f"{'pool rule':<34}{'wall s':>9}{'CPU s':>9}{'peak MB':>9}")
    for k in args.sizes:
        wall, cpu, peak = time_pool_rule(k)
        print(f"{f'{k} trials, {SHAPES[k]} groups':<34}{wall:9.1f}{cpu:9.1f}{peak:9.0f}", flush=True)
    if args.old:
        wall, cpu, peak = time_pool_rule(100, old=True)
        print(f"{'100 trials, old engine (' + OLD_ENGINE + ')':<34}{wall:9.1f}{cpu:9.1f}{peak:9.0f}", flush=True)
    ours, metafor = leave_one_out_side_by_side()
    print(f"GLMM leave-one-out, k = 100: ours {ours:.2f} CPU s; metafor: {metafor}")


if __name__ == "__main__":
    main()
