"""metaprop.entry: how a job runs its main (its log, its cost) and spreads independent work over its threads."""

import os
import subprocess
import sys

import pytest
from conftest import SCRIPTS
from metaprop import entry

linux = pytest.mark.skipif(sys.platform != "linux", reason="parallel_map forks only on Linux")


def square_and_pid(x):
    return x * x, os.getpid()


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_parallel_map_gives_the_values_of_a_loop_in_its_order(workers):
    items = [3, 1, 4, 1, 5, 9, 2, 6]
    values = entry.parallel_map(square_and_pid, items, workers)
    assert [v for v, _ in values] == [x * x for x in items]


@linux
def test_parallel_map_runs_in_forked_workers_that_share_the_callers_data():
    data = {"offset": 1000}  # a closure: nothing is pickled to the workers, they inherit it

    values = entry.parallel_map(lambda x: (x + data["offset"], os.getpid()), range(6), 2)
    assert [v for v, _ in values] == [1000 + x for x in range(6)]
    pids = {pid for _, pid in values}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # one worker, or one item: no process is started
    assert {pid for _, pid in entry.parallel_map(square_and_pid, range(3), 1)} == {os.getpid()}
    assert {pid for _, pid in entry.parallel_map(square_and_pid, [7], 4)} == {os.getpid()}


def test_parallel_map_raises_what_a_worker_raised():
    def fail_on_three(x):
        if x == 3:
            raise ValueError(f"item {x} is bad")
        return x

    with pytest.raises(ValueError, match="item 3 is bad"):
        entry.parallel_map(fail_on_three, range(5), 2)
    assert entry._WORK is None  # nothing left behind for the next call


@linux
def test_a_worker_does_not_write_the_callers_unflushed_log_again(tmp_path):
    log = tmp_path / "job.log"
    saved = sys.stderr
    with open(log, "w") as handle:
        sys.stderr = handle
        try:
            print("warning written before the workers start", file=sys.stderr)  # still in the buffer
            entry.parallel_map(lambda x: print(f"from item {x}", file=sys.stderr), range(4), 2)
        finally:
            sys.stderr = saved
    lines = log.read_text().splitlines()
    assert lines.count("warning written before the workers start") == 1
    assert sorted(lines[1:]) == [f"from item {x}" for x in range(4)]


@linux
def test_the_jobs_cost_line_counts_its_workers_cpu(tmp_path):
    # a fresh process, so that its own CPU time is its start and nothing of other tests
    log = tmp_path / "job.log"
    code = f"""
import sys, time, types
sys.path.insert(0, {str(SCRIPTS)!r})
from metaprop import entry

def spin(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

entry.run(lambda _: entry.parallel_map(spin, [0.4, 0.4], 2), types.SimpleNamespace(log=[{str(log)!r}], rule="demo"))
print(time.process_time())
"""
    own = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    cpu = float(log.read_text().split("finished: ")[1].split(" CPU-s")[0])
    assert cpu - own >= 0.75  # the workers' 0.8 CPU-s are in the line, beside the job's own


@linux
def test_a_worker_killed_fails_the_job_instead_of_hanging_it():
    import signal

    def killed_on_two(x):
        if x == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
        return x

    with pytest.raises(RuntimeError, match="worker process of this job stopped without a result"):
        entry.parallel_map(killed_on_two, range(4), 2)


@linux
def test_workers_end_when_the_job_is_killed(tmp_path):
    # a job killed outright (out of memory, kill -9) leaves no worker holding memory behind
    import signal
    import time

    code = f"""
import os, sys, time
sys.path.insert(0, {str(SCRIPTS)!r})
from metaprop import entry

def wait(x):
    open(os.path.join({str(tmp_path)!r}, f"worker{{x}}"), "w").write(str(os.getpid()))
    time.sleep(120)

entry.parallel_map(wait, range(2), 2)
"""
    job = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("worker*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(path.read_text()) for path in tmp_path.glob("worker*")]
        assert len(pids) == 2
        os.kill(job.pid, signal.SIGKILL)
        job.wait()

        def running(pid):
            try:
                return open(f"/proc/{pid}/stat").read().split(") ")[1][0] not in "ZX"  # gone or a zombie: ended
            except FileNotFoundError:
                return False

        deadline = time.monotonic() + 10
        while any(running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(running(pid) for pid in pids)
    finally:
        job.kill()
        for path in tmp_path.glob("worker*"):
            try:
                os.kill(int(path.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def test_a_job_leaves_its_imports_out_of_the_garbage_collectors_passes(tmp_path):
    # a fresh process: what entry.run does to the collector is all this process sees
    log = tmp_path / "job.log"
    code = f"""
import gc, json, sys, types
sys.path.insert(0, {str(SCRIPTS)!r})
import pandas  # noqa: F401 (an import of the job's size)
from metaprop import entry

seen = {{}}
def main(_):
    seen.update(threshold=gc.get_threshold(), frozen=gc.get_freeze_count(), tracked=len(gc.get_objects()))
    cycle = []
    cycle.append(cycle)  # garbage only the collector frees
    del cycle
    seen["collected"] = gc.collect()

entry.run(main, types.SimpleNamespace(log=[{str(log)!r}], rule="demo"))
print(json.dumps(seen))
"""
    import json

    seen = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)
    assert seen["threshold"] == [10_000, 20, 20]
    assert seen["frozen"] > 50_000 > seen["tracked"]  # pandas' objects are frozen, not left to every pass
    assert seen["collected"] >= 1  # the collector still frees what the job makes


@linux
def test_a_job_runs_one_blas_thread_whatever_threads_snakemake_gives_it():
    # Snakemake sets OPENBLAS_NUM_THREADS to the rule's threads (2 for pool and figures); the job's first import,
    # of the library, sets it to 1 before numpy loads: its threads are parallel_map's processes
    code = f"""
import sys
sys.path.insert(0, {str(SCRIPTS)!r})
from metaprop.entry import run  # noqa: F401 (as a job script starts)
import numpy  # noqa: F401
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("Threads:")))
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    threads = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert threads.stdout.strip() == "1"
