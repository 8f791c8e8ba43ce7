"""The `pool` rule on synthetic tables of 100 (6 groups), 1,000 and 10,000 trials, and GLMM leave-one-out beside
a metafor loop.

Run from the repository root: python benchmarks/glmm_engine.py [--sizes 100 1000 10000] [--old]
                          or: python benchmarks/glmm_engine.py --seed [--against 8ca1f27] [--repeat 5]

Each table is seeded (`numpy.random.default_rng(SEED)`): groups with logit means from -4 to 1.5, a trial's
logit ~ N(group mean, 0.8^2), n ~ integers 10 to 400, and one trial in ten forced to 0 events. In a temporary
copy of this checkout the table is extracted first (untimed), then `snakemake --cores 2 ... pooled.tsv` runs
the `pool` rule alone with the default config: its wall time, CPU time and peak memory (of Snakemake's child
processes) are printed. `--old` also times the engine this project had before (glmm.py of commit d0e71e6) on the
100-trial table. Nothing is asserted.

`--seed`: the GLMM work of the bundled 12 trials (data/raw/table1.tsv, every configured outcome) in one process, as
the pipeline's jobs call it: pool_outcome and leave_one_out with method glmm, the cumulative table, the adjusted
comparisons and the overlap rules. CPU seconds (time.process_time) of each of `--repeat` runs after a warm-up, the
engine's memory of recent fits emptied before each (as in a fresh job). `--against REV` runs the same in another
process with glmm.py taken from git revision REV (every other module as checked out) and prints the largest
relative difference between the two engines' outputs.
"""

import argparse
import pickle
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


def seed_glmm_work(repeat, out_path):
    """Time the seed's GLMM work (this process's metaprop) and pickle the outputs of the last run."""
    import yaml
    from metaprop.analysis.adjusted import adjusted_comparisons
    from metaprop.analysis.cumulative import cumulative_table
    from metaprop.analysis.extraction import studies_table
    from metaprop.analysis.meta_analysis import leave_one_out, overlap_sensitivity, pool_outcome
    from metaprop.io.tables import read_trials
    from metaprop.spec import Outcomes
    from metaprop.stats import glmm

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    declared = list(Outcomes(config["outcomes"]))
    trials = read_trials([str(ROOT / path) for path in config["trials"]], declared)
    studies = studies_table(trials, declared, config["ci_method"], config["overlap_rule"], config["level"],
                            [c for c in trials.columns if c not in ("study", "modality")])
    config["outcomes"] = [o.id for o in declared]
    sets = [list(mods) for mods in config["adjusted_comparisons"]]

    def work():
        out = {}
        for outcome in config["outcomes"]:
            out["pooled", outcome], out["tests", outcome] = pool_outcome(studies, outcome, ["glmm"])
            out["leave_one_out", outcome] = leave_one_out(studies, outcome, ["glmm"])
            out["cumulative", outcome] = cumulative_table(studies, outcome, ["glmm"])
            out["adjusted", outcome] = adjusted_comparisons(studies, outcome, sets)
        out["overlap"] = overlap_sensitivity(trials, declared[0], "glmm", ["largest", "latest", "earliest",
                                                                                     "none"])
        return out

    work()  # imports and first-call costs
    seconds = []
    for _ in range(repeat):
        getattr(glmm, "_FITS", {}).clear()  # fits kept from the last run: a fresh job has none
        start = time.process_time()
        out = work()
        seconds.append(time.process_time() - start)
    Path(out_path).write_bytes(pickle.dumps(out))
    return seconds


def largest_difference(ours, theirs):
    """(largest relative difference over every numeric cell, number of cells that differ, texts that differ)."""
    worst, cells, texts = 0.0, 0, 0
    for key, table in ours.items():
        other = theirs[key]
        for column in table.columns:
            a, b = table[column], other[column]
            if a.dtype.kind in "fiu" or str(a.dtype) in ("Int64", "Float64"):
                a, b = a.astype(float).to_numpy(), b.astype(float).to_numpy()
                differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
                cells += int(differ.sum())
                if differ.any():
                    with np.errstate(all="ignore"):
                        worst = max(worst, float(np.nanmax(np.abs(a - b)[differ] / np.abs(b[differ]))))
            else:
                texts += int((a.fillna("") != b.fillna("")).sum())
    return worst, cells, texts


def seed_side_by_side(repeat, against):
    """The seed's GLMM work with this checkout's engine and, with `against`, with glmm.py of that revision."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("this checkout", ROOT / "workflow" / "scripts")]
        if against:
            shutil.copytree(ROOT / "workflow", Path(tmp) / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
            scripts = Path(tmp) / "workflow" / "scripts"
            # the engine of that revision, wherever the library kept it then
            for old in ("workflow/scripts/metaprop/stats/glmm.py", "workflow/scripts/metaprop/glmm.py"):
                shown = subprocess.run(["git", "-C", str(ROOT), "show", f"{against}:{old}"], capture_output=True,
                                       text=True, check=False)
                if shown.returncode == 0:
                    break
            (scripts / "metaprop" / "stats" / "glmm.py").write_text(shown.stdout)
            runs.append((f"glmm.py of {against}", scripts))
        outputs = []
        for label, scripts in runs:
            out_path = Path(tmp) / f"{len(outputs)}.pkl"
            done = subprocess.run([sys.executable, __file__, "--seed-worker", str(scripts), str(out_path),
                                   str(repeat)], capture_output=True, text=True, check=True)
            seconds = [float(x) for x in done.stdout.split()]
            print(f"{label:<28} CPU s per run: {' '.join(f'{x:.2f}' for x in seconds)} (best {min(seconds):.2f})",
                  flush=True)
            outputs.append(pickle.loads(out_path.read_bytes()))
        if against:
            worst, cells, texts = largest_difference(outputs[0], outputs[1])
            print(f"outputs: {cells} numeric cells differ (largest relative difference {worst:.3g}), "
                  f"{texts} text cells differ")


def main():
    if sys.argv[1:2] == ["--seed-worker"]:  # one engine, in a process of its own
        scripts, out_path, repeat = sys.argv[2:5]
        sys.path.insert(0, scripts)
        for name in [m for m in sys.modules if m == "metaprop" or m.startswith("metaprop.")]:
            del sys.modules[name]
        print(" ".join(str(x) for x in seed_glmm_work(int(repeat), out_path)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], choices=sorted(SHAPES))
    parser.add_argument("--old", action="store_true", help="also time the old engine on 100 trials (minutes)")
    parser.add_argument("--seed", action="store_true", help="only the seed's GLMM work in one process")
    parser.add_argument("--against", metavar="REV", help="with --seed: also glmm.py of this git revision")
    parser.add_argument("--repeat", type=int, default=5, help="with --seed: timed runs per engine")
    args = parser.parse_args()
    if args.seed:
        seed_side_by_side(args.repeat, args.against)
        return
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
