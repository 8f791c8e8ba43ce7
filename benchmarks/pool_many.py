"""Pool 10,000 simulated meta-analyses of 20 trials with logit-REML, beside statsmodels and metafor in a loop.

Run from anywhere: python benchmarks/pool_many.py [--full]

Ours is timed on all 10,000 at once; the alternatives fit one meta-analysis per call, so they are
timed on the first 1,000 and extrapolated linearly (all 10,000 with --full). Nothing is asserted:
the numbers are printed with the versions and CPU they were measured on.
"""

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import statsmodels
from scipy.special import expit
from statsmodels.stats.meta_analysis import combine_effects

# The pipeline's scripts are not an installed package; import them from this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))
from metaprop.stats.pooling import pool_inverse_variance
from metaprop.stats.proportions import logit_effects

SEED = 20261124
N_META = 10_000
N_TRIALS = 20
N_SUBSET = 1_000
REPEATS = 5

# Times only the rma loop (system.time), not R's startup or reading the file; the converged
# refit for the agreement check is outside the timed loop.
R_SCRIPT = r"""
suppressPackageStartupMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
d <- read.delim(args[1])
ys <- split(d$yi, d$id)
vs <- split(d$vi, d$id)
fit <- function(i, ...) tryCatch(rma(ys[[i]], vs[[i]], method = "REML", ...), error = function(e) NULL)
elapsed <- system.time(for (i in seq_along(ys)) fit(i))[["elapsed"]]
tight <- list(threshold = 1e-10, maxiter = 1000)
tau2 <- vapply(seq_along(ys), function(i) {
  f <- fit(i, control = tight)
  if (is.null(f)) NA_real_ else f$tau2
}, numeric(1))
writeLines(ifelse(is.na(tau2), "nan", sprintf("%.17g", tau2)), args[2])
cat("elapsed", sprintf("%.6f", elapsed), "\n")
cat("version", as.character(packageVersion("metafor")), "\n")
"""


def simulate(m=N_META, k=N_TRIALS, seed=SEED):
    """Counts from a random-intercept logistic model, turned into log odds and their variances."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0.0, 1.0, m)
    tau = rng.uniform(0.0, 1.0, m)
    n = rng.integers(10, 300, size=(m, k), endpoint=True)
    events = rng.binomial(n, expit(mu[:, None] + tau[:, None] * rng.standard_normal((m, k))))
    return logit_effects(events, n)


def time_ours(y, v, tau2_method="reml", repeats=REPEATS, tau2_ci=True):
    """Best of `repeats` pool_inverse_variance calls after one warm-up; returns (seconds, result)."""
    result = pool_inverse_variance(y, v, tau2_method, tau2_ci=tau2_ci)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        pool_inverse_variance(y, v, tau2_method, tau2_ci=tau2_ci)
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_memory_mb(y, v):
    """Peak Python/numpy allocation of one full call; measured apart because tracemalloc slows the call."""
    tracemalloc.start()
    pool_inverse_variance(y, v, "reml")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def time_statsmodels(y, v, method_re):
    """One combine_effects call per meta-analysis; returns (seconds, tau2 per meta-analysis)."""
    combine_effects(y[0], v[0], method_re=method_re)  # warm-up: first-call imports are not pooling
    tau2 = np.empty(len(y))
    # statsmodels does not truncate DL's tau^2 at 0, so a negative one warns in a sqrt: noise here
    with np.errstate(invalid="ignore"):
        start = time.perf_counter()
        for i in range(len(y)):
            tau2[i] = combine_effects(y[i], v[i], method_re=method_re).tau2
        return time.perf_counter() - start, tau2


def metafor_available():
    """True when Rscript exists and can load metafor."""
    if shutil.which("Rscript") is None:
        return False
    check = subprocess.run(["Rscript", "-e", "quit(status = !requireNamespace('metafor', quietly = TRUE))"],
                           capture_output=True, check=False)
    return check.returncode == 0


def write_long_tsv(path, y, v):
    """One row per trial (id, yi, vi) at full precision, dropping NaN padding as rma would need."""
    ids = np.broadcast_to(np.arange(1, len(y) + 1)[:, None], y.shape)
    keep = np.isfinite(y) & np.isfinite(v)
    rows = np.column_stack([ids[keep], y[keep], v[keep]])
    np.savetxt(path, rows, fmt=["%d", "%.17g", "%.17g"], delimiter="\t", header="id\tyi\tvi", comments="")


def run_metafor(y, v):
    """Loop rma(method="REML") in R; returns (seconds R reports, converged tau2, metafor version)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_long_tsv(tmp / "yv.tsv", y, v)
        (tmp / "loop.R").write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(tmp / "loop.R"), str(tmp / "yv.tsv"), str(tmp / "tau2.txt")],
                             capture_output=True, text=True, check=True)
        tau2 = np.array([float(line) for line in (tmp / "tau2.txt").read_text().split()])
    fields = dict(line.split(maxsplit=1) for line in out.stdout.splitlines() if line.strip())
    return float(fields["elapsed"]), tau2, fields["version"].strip()


def compare_tau2(ours, theirs):
    """Relative difference where both are > 0; where only one is 0, how large the other got; absolute overall."""
    both = (ours > 0) & (theirs > 0)
    one_zero = (ours > 0) != (theirs > 0)
    rel = np.abs(ours - theirs)[both] / theirs[both]
    other = np.maximum(ours, theirs)[one_zero]
    return (rel.max(initial=0.0), int(both.sum()), int(one_zero.sum()), other.max(initial=0.0),
            np.nanmax(np.abs(ours - theirs)))


def cpu_model():
    """The CPU's model name, so that the timings can be read later."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_table(rows, ours_seconds):
    """Plain table: method | meta-analyses timed | seconds for 10,000 | speed-up of ours."""
    header = ("method", "meta-analyses timed", f"seconds for {N_META:,}", "speed-up of ours")
    lines = [header]
    for method, n_timed, seconds in rows:
        extrapolated = " (extrapolated)" if n_timed < N_META else ""
        lines.append((method, f"{n_timed:,}", f"{seconds:.3f}{extrapolated}", f"{seconds / ours_seconds:.0f}x"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print(" | ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help=f"time the alternatives on all {N_META:,}, not {N_SUBSET:,}")
    args = parser.parse_args()
    n_alt = N_META if args.full else N_SUBSET
    scale = N_META / n_alt

    y, v = simulate()
    print(f"{N_META:,} simulated meta-analyses of {N_TRIALS} trials (seed {SEED}), logit scale, tau^2 by REML")
    ours_seconds, ours = time_ours(y, v)
    peak = peak_memory_mb(y, v)
    sm_pm_seconds, sm_pm_tau2 = time_statsmodels(y[:n_alt], v[:n_alt], "iterated")
    sm_dl_seconds, _ = time_statsmodels(y[:n_alt], v[:n_alt], "dl")
    rows = [
        ("ours: pool_inverse_variance(reml), all at once", N_META, ours_seconds),
        ("statsmodels combine_effects(iterated = Paule-Mandel), loop", n_alt, sm_pm_seconds * scale),
        ("statsmodels combine_effects(dl), loop", n_alt, sm_dl_seconds * scale),
    ]
    metafor = run_metafor(y[:n_alt], v[:n_alt]) if metafor_available() else None
    if metafor is not None:
        rows.append(('metafor rma(method="REML"), loop in R', n_alt, metafor[0] * scale))

    print()
    print_table(rows, ours_seconds)
    print()
    print(f"ours: best of {REPEATS} after a warm-up, with CIs, Q-profile tau^2/I^2 CIs and prediction intervals; "
          f"peak memory {peak:.1f} MB (tracemalloc)")
    print("statsmodels has no REML: 'iterated' is its Paule-Mandel (stops at |Q - df| < 1e-5); 'dl' is DerSimonian-Laird")
    if metafor is None:
        print("metafor: not installed (no Rscript that loads metafor); skipped")
    if n_alt < N_META:
        print(f"alternatives timed on the first {n_alt:,} and extrapolated linearly to {N_META:,} (--full times all)")
    print_like_for_like(y, v, sm_pm_seconds * scale, sm_dl_seconds * scale)
    print_agreement(y[:n_alt], v[:n_alt], ours["tau2"][:n_alt], sm_pm_tau2, metafor)
    print_versions(metafor)


def print_like_for_like(y, v, sm_pm_seconds, sm_dl_seconds):
    """Ours with statsmodels' own estimators and its outputs (no Q-profile CIs), since it has no REML to race."""
    print("like for like, ours all at once without the Q-profile intervals combine_effects lacks:")
    for label, method in (("REML", "reml"), ("PM", "pm"), ("DL", "dl")):
        seconds = time_ours(y, v, method, tau2_ci=False)[0]
        print(f"  {label} {seconds:.3f} s: {sm_pm_seconds / seconds:.0f}x statsmodels iterated, "
              f"{sm_dl_seconds / seconds:.0f}x statsmodels dl")


def print_agreement(y, v, ours_reml_tau2, sm_pm_tau2, metafor):
    """Our tau^2 against metafor's (REML, both converged) and statsmodels' Paule-Mandel, on the timed subset."""
    ours_pm_tau2 = pool_inverse_variance(y, v, tau2_method="pm")["tau2"]
    print()
    print(f"agreement on the {len(y):,} meta-analyses the alternatives fitted:")
    if metafor is not None:
        ok = np.isfinite(metafor[1])
        rel, n_both, n_one, other, absolute = compare_tau2(ours_reml_tau2[ok], metafor[1][ok])
        print(f"  tau^2 REML, ours vs metafor (threshold 1e-10): max relative difference {rel:.1e} "
              f"where both > 0 ({n_both:,});\n    {n_one} where one is 0 and the other <= {other:.1e}; "
              f"max absolute difference {absolute:.1e}; rma failures {int((~ok).sum())}")
    print(f"  tau^2 PM, ours vs statsmodels iterated: max absolute difference "
          f"{np.max(np.abs(ours_pm_tau2 - sm_pm_tau2)):.1e}")


def print_versions(metafor):
    """Software and machine, so that the numbers can be read later."""
    print()
    print(f"Python {platform.python_version()}, numpy {np.__version__}, statsmodels {statsmodels.__version__}, "
          f"metafor {metafor[2] if metafor is not None else 'not installed'}")
    print(f"CPU: {cpu_model()}")


if __name__ == "__main__":
    main()
