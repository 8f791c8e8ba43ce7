"""The whole pipeline on seeded synthetic trial tables of 100, 1,000 and 10,000 trials: wall time, CPU time, peak memory.

Run from anywhere: python benchmarks/scale.py [--sizes 100 1000 10000 100x6] [--timeout 1800] [--cores 2]

Each size runs `snakemake --cores N --configfile bench.yaml` in a fresh temporary copy of the project
(a cold run: no earlier results) under a hard timeout. While it runs, /proc is sampled every 0.2 s for the jobs'
processes: CPU seconds and peak memory per entry script (pool.py, figures.py, ...; a job's forked workers count as
processes of its script), printed after the totals. Where
Chromium is installed, the report is loaded headless and the time to its load event printed. Sizes: a number of trials in two modalities, or
`100x6`: 100 trials in six modalities, a tenth of them with zero events. Nothing is asserted: the numbers
are printed with the machine they were measured on.
"""

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from scipy.special import expit

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["Snakefile", "config.yaml", "workflow", "envs", "requirements.txt", "README.md"]
SEED = 20261125


def synthetic_table(k, groups, seed=SEED, zero_share=0.0):
    """Rows of study, modality, n, cr_events: n uniform on 10..300, logit rate ~ N(group mean, 0.5^2)."""
    rng = np.random.default_rng([seed, k, groups])
    names = ["CAR-T", "Blinatumomab"] if groups == 2 else [f"Group {i + 1}" for i in range(groups)]
    means = np.linspace(1.0, -1.0, groups)
    group = np.arange(k) % groups
    n = rng.integers(10, 301, size=k)
    events = rng.binomial(n, expit(means[group] + 0.5 * rng.standard_normal(k)))
    # zero-event arms: the GLMM and the 0.5 correction of the logit methods are exercised
    events[rng.random(k) < zero_share] = 0
    lines = ["study\tmodality\tn\tcr_events"]
    lines += [f"Trial {i + 1:05d}\t{names[g]}\t{n_i}\t{e_i}" for i, (g, n_i, e_i) in enumerate(zip(group, n, events))]
    return "\n".join(lines) + "\n"


def running_rules(log):
    """Rules of the jobs Snakemake started and had not finished, from its log."""
    started = {jobid: rule for rule, jobid in re.findall(r"^(?:local)?rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)", log,
                                                          flags=re.MULTILINE)}
    finished = set(re.findall(r"Finished jobid: (\d+)", log))
    return sorted({rule for jobid, rule in started.items() if jobid not in finished})


def parse_size(token):
    """'1000' -> (1000, 2, 0.0); '100x6' -> (100, 6, 0.1)."""
    k, _, groups = token.partition("x")
    return int(k), int(groups or 2), (0.1 if groups else 0.0)


class JobSampler(threading.Thread):
    """Samples /proc every `interval` s for processes of the session `sid`: per entry script (the name Snakemake's
    `script:` gives its copy, e.g. .snakemake/scripts/tmpab12.pool.py -> pool.py) the CPU seconds (user + system,
    last sample of each process) and the largest peak resident memory (VmHWM). A process shorter than one
    interval can be missed, and CPU after its last sample is not counted: the totals from wait4 are exact."""

    def __init__(self, sid, interval=0.2):
        super().__init__(daemon=True)
        self.sid, self.interval, self.done = sid, interval, threading.Event()
        self.seen = {}  # pid -> (script, cpu seconds, peak kB)
        self.tick = os.sysconf("SC_CLK_TCK")

    def run(self):
        while not self.done.wait(self.interval):
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    self._sample(int(entry))

    def _sample(self, pid):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) != self.sid:  # field 6 of stat: the session id
                return
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            script = next((re.sub(r"^tmp[^.]*\.", "", Path(a.decode()).name) for a in cmd
                           if a.endswith(b".py") and b".snakemake/scripts/" in a), None)
            if script is None:
                return
            cpu = (int(fields[11]) + int(fields[12])) / self.tick
            hwm = next((int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("VmHWM:")), 0)
        except (OSError, ValueError, IndexError):  # the process ended between listing and reading
            return
        self.seen[pid] = (script, cpu, hwm)

    def per_script(self):
        """{script: (jobs, CPU seconds, peak MB)}."""
        out = {}
        for script, cpu, hwm in self.seen.values():
            jobs, total, peak = out.get(script, (0, 0.0, 0.0))
            out[script] = (jobs + 1, total + cpu, max(peak, hwm / 1024))
        return out


LOAD_PROBE = ('<script>window.addEventListener("load", function () { setTimeout(function () {'
              'var n = performance.getEntriesByType("navigation")[0], p = document.createElement("pre");'
              'p.textContent = "LOADMS " + n.loadEventEnd; document.body.appendChild(p); }, 0); });</script>')


def report_load_ms(html_path, workdir):
    """Milliseconds from navigation start to the end of the load event of the report in headless Chromium (the
    Debian package tests/browser.py uses), best of 2; None without Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not html_path.exists():
        return None
    page = workdir / "load_probe.html"
    page.write_text(html_path.read_text(encoding="utf-8").replace('<meta charset="utf-8">',
                                                                 '<meta charset="utf-8">' + LOAD_PROBE, 1), encoding="utf-8")
    times = []
    for _ in range(2):
        run = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              f"--user-data-dir={workdir / 'chromium-profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
                              "--virtual-time-budget=3000", "--dump-dom", page.as_uri()],
                             capture_output=True, text=True, timeout=120, check=False)
        found = re.search(r"LOADMS ([0-9.]+)", run.stdout)
        if found:
            times.append(float(found.group(1)))
    return min(times) if times else None


def copy_project(dest):
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)


def run_size(token, cores, timeout, keep, methods=None):
    k, groups, zero_share = parse_size(token)
    base = Path(tempfile.mkdtemp(prefix=f"scale-{token}-"))
    workdir = base / "project"
    copy_project(workdir)
    (workdir / "data" / "raw").mkdir(parents=True)
    (workdir / "data" / "raw" / "synthetic.tsv").write_text(synthetic_table(k, groups, zero_share=zero_share))
    config = "trials: [data/raw/synthetic.tsv]\n"
    if methods:
        config += f"methods: [{', '.join(methods)}]\nprimary_method: {methods[0]}\n"
    (workdir / "bench.yaml").write_text(config)
    err_path = base / "snakemake.err"
    stopped = []

    def stop(pgid):
        stopped.append(True)
        os.killpg(pgid, signal.SIGKILL)

    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(err_path, "w") as err:
        # its own session, so that a timeout stops the running job too, not only Snakemake
        proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", "bench.yaml"],
                                cwd=workdir, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        timer = threading.Timer(timeout, stop, (proc.pid,))
        timer.start()
        sampler = JobSampler(proc.pid)
        sampler.start()
        # wait4: the CPU time and peak memory of this run's process tree alone (its reaped descendants included)
        _, wait_status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        sampler.done.set()
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
    wall = time.perf_counter() - start
    status = (f"timeout after {timeout:g} s" if stopped else
              "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})")
    if stopped:
        status += f" (running: {', '.join(running_rules(err_path.read_text())) or 'parsing'})"
    cpu = usage.ru_utime + usage.ru_stime
    # ru_maxrss: the largest single process of the tree (kB on Linux), not the sum of processes alive at once
    peak_mb = usage.ru_maxrss / 1024
    sizes = {name: (workdir / "results" / name).stat().st_size / 1e6
             for name in ("report.html", "figures/forest_cr.png") if (workdir / "results" / name).exists()}
    pdf = workdir / "results" / "figures" / "forest_cr.pdf"
    pages = len(re.findall(rb"/Type /Page\b(?!s)", pdf.read_bytes())) if pdf.exists() else 0
    load_ms = report_load_ms(workdir / "results" / "report.html", base)
    if status != "ok":
        print(err_path.read_text()[-2000:], file=sys.stderr)
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    return {"size": token, "k": k, "groups": groups, "status": status, "wall": wall, "cpu": cpu, "peak_mb": peak_mb,
            "sizes": sizes, "load": load, "dir": str(workdir) if keep else "", "jobs": sampler.per_script(),
            "pages": pages, "load_ms": load_ms}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100", "1000", "10000"],
                        help="numbers of trials (two modalities), or KxG for K trials in G modalities with zero-event arms")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a run is stopped (default 1800)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores (default 2)")
    parser.add_argument("--methods", nargs="+", help="methods instead of the config's (the first is the primary), "
                        "e.g. every method but bayes: glmm logit-dl logit-reml logit-pm logit-dl-hksj "
                        "logit-reml-hksj logit-pm-hksj ft-dl")
    parser.add_argument("--keep", action="store_true", help="keep each run's directory and print where it is")
    args = parser.parse_args(argv)
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    print(f"# {os.cpu_count()} CPUs ({cpu_model}), Python {platform.python_version()}, snakemake --cores {args.cores}, "
          f"timeout {args.timeout:g} s, seed {SEED}" + (f", methods {' '.join(args.methods)}" if args.methods else ""))
    header = ("size    | trials | groups | status              | wall s  | CPU s   | peak MB (largest process) | "
              "report.html MB | report load ms | forest_cr.png MB | forest_cr.pdf pages | load before")
    print(header)
    results = []
    for token in args.sizes:
        r = run_size(token, args.cores, args.timeout, args.keep, args.methods)
        results.append(r)
        print(f"{r['size']:<7} | {r['k']:>6} | {r['groups']:>6} | {r['status']:<19} | {r['wall']:>7.1f} | {r['cpu']:>7.1f} | "
              f"{r['peak_mb']:>25.0f} | {r['sizes'].get('report.html', float('nan')):>14.2f} | "
              f"{r['load_ms'] if r['load_ms'] is not None else float('nan'):>14.0f} | "
              f"{r['sizes'].get('figures/forest_cr.png', float('nan')):>16.2f} | {r['pages']:>19} | {r['load']:>11.1f}"
              + (f"  {r['dir']}" if r["dir"] else ""), flush=True)
    print("\nper entry script (sampled from /proc every 0.2 s): jobs, CPU s, peak MB")
    for r in results:
        jobs = sorted(r["jobs"].items(), key=lambda item: -item[1][1])
        print(f"{r['size']:<7} | " + "; ".join(f"{name} {n} x, {cpu:.1f} s, {peak:.0f} MB" for name, (n, cpu, peak) in jobs),
              flush=True)


if __name__ == "__main__":
    main()
